//! A look at a binary's ELF header before it is pushed: a directory of darwin or arm64
//! binaries for amd64 hosts (the classic air-gap mistake) fails here, on the operator's
//! machine, instead of as `exec format error` in a crash-looping unit on every host.

use super::catalog::Arch;

/// Checks that `bytes` is a 64-bit little-endian Linux ELF executable for `arch`;
/// the error says what the file is instead.
pub fn check(bytes: &[u8], arch: Arch) -> Result<(), String> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        let kind = if bytes.starts_with(&[0xcf, 0xfa, 0xed, 0xfe]) || bytes.starts_with(&[0xca, 0xfe, 0xba, 0xbe]) {
            "a macOS (Mach-O) binary"
        } else if bytes.starts_with(b"MZ") {
            "a Windows executable"
        } else if bytes.starts_with(&[0x1f, 0x8b]) {
            "a gzip archive (extract it first)"
        } else if bytes.starts_with(b"<") {
            "an HTML or XML page"
        } else if bytes.is_empty() {
            "empty"
        } else {
            "not an ELF executable"
        };
        return Err(format!("is {kind}, not a Linux {arch} executable"));
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(format!("is a 32-bit or big-endian ELF file, not a Linux {arch} executable"));
    }
    let machine = u16::from_le_bytes([bytes[18], bytes[19]]);
    if machine != arch.elf_machine() {
        let built_for = Arch::ALL
            .into_iter()
            .find(|a| a.elf_machine() == machine)
            .map(|a| a.to_string())
            .unwrap_or_else(|| format!("ELF machine {machine}"));
        return Err(format!("is built for {built_for}, but the host is {arch}"));
    }
    Ok(())
}

/// A minimal ELF header for `arch` followed by `body`: what tests use as a "binary".
pub fn fake_binary(arch: Arch, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; 64];
    v[..4].copy_from_slice(b"\x7fELF");
    v[4] = 2; // 64-bit
    v[5] = 1; // little-endian
    v[6] = 1; // version
    v[16] = 2; // ET_EXEC
    v[18..20].copy_from_slice(&arch.elf_machine().to_le_bytes());
    v.extend_from_slice(body);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_right_arch_only() {
        assert_eq!(check(&fake_binary(Arch::Amd64, b"x"), Arch::Amd64), Ok(()));
        assert_eq!(
            check(&fake_binary(Arch::Arm64, b"x"), Arch::Amd64).unwrap_err(),
            "is built for arm64, but the host is amd64"
        );
    }

    #[test]
    fn names_what_it_is_instead() {
        assert!(check(b"<html>404</html> padding padding", Arch::Amd64).unwrap_err().contains("HTML"));
        assert!(check(&[0xcf, 0xfa, 0xed, 0xfe, 0, 0, 0, 0], Arch::Arm64).unwrap_err().contains("Mach-O"));
        assert!(check(b"", Arch::Amd64).unwrap_err().contains("empty"));
    }

    #[test]
    fn the_machines_own_binaries_pass() {
        // A real binary of this machine (the test runs on amd64 or arm64 Linux).
        let arch = Arch::from_machine(std::env::consts::ARCH).expect("amd64 or arm64 test machine");
        let bytes = std::fs::read("/bin/sh").expect("/bin/sh");
        assert_eq!(check(&bytes, arch), Ok(()));
    }
}
