//! "Does sshd answer?": a TCP connect and the server's identification line. Enough to
//! know a host booted far enough to serve SSH, without depending on the ssh module.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// The server's identification line ("SSH-2.0-OpenSSH_9.2p1 ...") when sshd answers on
/// `addr:22` within `timeout`.
pub fn ssh_banner(addr: IpAddr, timeout: Duration) -> Option<String> {
    banner_at(SocketAddr::new(addr, 22), timeout)
}

fn banner_at(sock: SocketAddr, timeout: Duration) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&sock, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    // The line can arrive in pieces; stop at the first newline.
    while !got.contains(&b'\n') && got.len() < buf.len() {
        let n = stream.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&got);
    let line = line.lines().next()?.trim_end().to_string();
    line.starts_with("SSH-").then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    #[test]
    fn reads_a_banner_and_rejects_other_servers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            // The identification line split over two writes, then a server that is not sshd.
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"SSH-2.0-Te").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(b"st_1\r\n").unwrap();
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(b"HTTP/1.1 400 Bad Request\r\n").unwrap();
        });
        assert_eq!(banner_at(addr, Duration::from_secs(2)).as_deref(), Some("SSH-2.0-Test_1"));
        assert_eq!(banner_at(addr, Duration::from_secs(2)), None);
        server.join().unwrap();
    }

    #[test]
    fn nothing_listening_is_none() {
        // 127.0.1.250 is a lab address no test boots.
        assert_eq!(ssh_banner("127.0.1.250".parse().unwrap(), Duration::from_millis(200)), None);
    }
}
