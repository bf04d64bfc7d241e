//! Overlay mounts for the hosts' root filesystems, and finding/removing stale mounts
//! (from /proc/self/mountinfo) that an interrupted run left behind.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Mount points in this mount namespace, in mount order (a path can appear more than
/// once when mounts are stacked).
pub fn mount_points() -> Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    Ok(parse_mountinfo(&info))
}

fn parse_mountinfo(info: &str) -> Vec<PathBuf> {
    info.lines().filter_map(|line| line.split(' ').nth(4)).map(|p| PathBuf::from(unescape(p))).collect()
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points at or below `dir`, deepest (and most recently mounted) first.
pub fn mount_points_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut under: Vec<PathBuf> = mount_points()?.into_iter().filter(|p| p.starts_with(dir)).collect();
    // Reverse mount order handles stacking; a stable sort by depth keeps that order
    // among mounts of the same depth.
    under.reverse();
    under.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    Ok(under)
}

/// Unmounts everything at or below `dir` (stacked mounts included). A busy mount is
/// detached lazily: the kernel frees it once its last user is gone.
pub fn unmount_all_under(dir: &Path) -> Result<()> {
    // Bounded: each round removes at least one mount or fails.
    for _ in 0..64 {
        let points = mount_points_under(dir)?;
        let Some(point) = points.first() else { return Ok(()) };
        unmount(point)?;
    }
    bail!("could not unmount everything below {}", dir.display())
}

pub fn unmount(path: &Path) -> Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EBUSY) {
        // SAFETY: as above.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
            return Ok(());
        }
        return Err(std::io::Error::last_os_error()).with_context(|| format!("unmounting {} (lazily)", path.display()));
    }
    Err(err).with_context(|| format!("unmounting {}", path.display()))
}

/// Mounts an overlay of `lower` (read-only) and `upper`/`work` (the host's own changes).
pub fn mount_overlay(lower: &Path, upper: &Path, work: &Path, target: &Path) -> Result<()> {
    for p in [lower, upper, work] {
        // The overlay option string separates with ',' and ':'; our own paths never hold
        // them, but a changed lab directory could.
        let s = p.as_os_str().as_bytes();
        if s.contains(&b',') || s.contains(&b':') {
            bail!("overlay directory {} must not contain ',' or ':'", p.display());
        }
    }
    let options = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
    let source = CString::new("overlay").expect("static string");
    let fstype = CString::new("overlay").expect("static string");
    let data = CString::new(options.clone()).context("overlay options contain NUL")?;
    let target_c = cpath(target)?;
    // SAFETY: all pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::mount(source.as_ptr(), target_c.as_ptr(), fstype.as_ptr(), 0, data.as_ptr() as *const libc::c_void)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("mounting overlay on {} ({options})", target.display()));
    }
    Ok(())
}

fn cpath(path: &Path) -> Result<CString> {
    CString::new(path.as_os_str().as_bytes()).with_context(|| format!("path {} contains NUL", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
98 22 0:50 / /var/lib/provision-lab/hosts/node1/root rw,relatime - overlay overlay rw,lowerdir=/a
99 98 0:51 / /var/lib/provision-lab/hosts/node1/root rw,relatime - overlay overlay rw,lowerdir=/a
100 22 0:52 / /tmp/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn parses_mount_points_with_escapes_and_stacking() {
        let points = parse_mountinfo(SAMPLE);
        assert_eq!(points.len(), 4);
        assert_eq!(points[3], PathBuf::from("/tmp/with space"));
        assert_eq!(points[1], points[2]);
    }

    #[test]
    fn unescape_leaves_plain_backslashes() {
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("a\\9"), "a\\9");
        assert_eq!(unescape("end\\04"), "end\\04");
    }
}
