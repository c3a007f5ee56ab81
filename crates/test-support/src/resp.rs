//! A minimal blocking RESP2 client: just enough to probe a server without the `redis` crate.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One RESP2 reply, as returned by [`command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`-style simple string.
    Status(String),
    /// `-ERR ...` error reply (the text after the `-`).
    Error(String),
    /// `:42` integer reply.
    Integer(i64),
    /// `$n` bulk string; `None` for the null bulk string `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n` array; `None` for the null array `*-1`.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text when it is a status or a non-null bulk string.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Status(text) => Some(text.clone()),
            Self::Bulk(Some(bytes)) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        }
    }
}

/// Sends one command to `addr` on a fresh connection and reads one reply.
///
/// `timeout` bounds the connect, every write and every read separately, so a stopped
/// (`SIGSTOP`) server makes this fail with [`io::ErrorKind::WouldBlock`] or
/// [`io::ErrorKind::TimedOut`] instead of hanging.
pub fn command(addr: SocketAddr, args: &[&str], timeout: Duration) -> io::Result<Reply> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;

    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    (&stream).write_all(&request)?;

    read_reply(&mut BufReader::new(stream))
}

fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(reader)?;
    let (kind, rest) = line
        .split_at_checked(1)
        .ok_or_else(|| invalid("empty reply line"))?;
    match kind {
        "+" => Ok(Reply::Status(rest.to_owned())),
        "-" => Ok(Reply::Error(rest.to_owned())),
        ":" => Ok(Reply::Integer(parse_int(rest)?)),
        "$" => {
            let Ok(len) = usize::try_from(parse_int(rest)?) else {
                return Ok(Reply::Bulk(None));
            };
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body)?;
            body.truncate(len);
            Ok(Reply::Bulk(Some(body)))
        }
        "*" => {
            let Ok(len) = usize::try_from(parse_int(rest)?) else {
                return Ok(Reply::Array(None));
            };
            let items = (0..len)
                .map(|_| read_reply(reader))
                .collect::<io::Result<_>>()?;
            Ok(Reply::Array(Some(items)))
        }
        other => Err(invalid(&format!("unknown RESP type byte {other:?}"))),
    }
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed before a reply",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn parse_int(text: &str) -> io::Result<i64> {
    text.parse()
        .map_err(|_| invalid(&format!("bad RESP integer {text:?}")))
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> Reply {
        read_reply(&mut &bytes[..]).unwrap()
    }

    #[test]
    fn parses_every_reply_kind() {
        assert_eq!(parse(b"+PONG\r\n"), Reply::Status("PONG".into()));
        assert_eq!(parse(b"-ERR nope\r\n"), Reply::Error("ERR nope".into()));
        assert_eq!(parse(b":-7\r\n"), Reply::Integer(-7));
        assert_eq!(
            parse(b"$3\r\na\r\n\r\n"),
            Reply::Bulk(Some(b"a\r\n".to_vec()))
        );
        assert_eq!(parse(b"$-1\r\n"), Reply::Bulk(None));
        assert_eq!(
            parse(b"*2\r\n:1\r\n$1\r\nx\r\n"),
            Reply::Array(Some(vec![
                Reply::Integer(1),
                Reply::Bulk(Some(b"x".to_vec()))
            ]))
        );
        assert_eq!(parse(b"*-1\r\n"), Reply::Array(None));
    }
}
