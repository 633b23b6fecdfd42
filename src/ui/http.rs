//! Just enough HTTP/1.1 for a local, read-only dashboard: one request per connection, GET and HEAD
//! only, and request paths decoded and checked before anything is looked up.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use crate::util::net::host_of;

/// The longest request head read (request line and headers).
const MAX_HEAD: usize = 16 * 1024;

/// A request's method and its target, split into the decoded path and the raw query.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path, percent-decoded (`/run/2026...`).
    pub path: String,
    /// What follows `?`, as sent.
    pub query: String,
    /// The `Host` header's name, without its port (empty when none was sent).
    pub host: String,
}

/// What the server answers.
pub struct Response {
    /// 200, 404, ...
    pub status: u16,
    /// The body's media type.
    pub content_type: &'static str,
    /// The body (left out for HEAD).
    pub body: Vec<u8>,
}

impl Response {
    /// A 200 with `body` of type `content_type`.
    pub fn ok(content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status: 200,
            content_type,
            body,
        }
    }

    /// An error page: the status and one line saying why.
    pub fn error(status: u16, why: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{status} {}: {why}\n", reason(status)).into_bytes(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

/// Reads one request head. `Ok(None)` when the client sent nothing; a malformed head is an error.
pub fn read_request(stream: &TcpStream) -> io::Result<Option<Request>> {
    let mut reader = BufReader::new(Read::take(stream, MAX_HEAD as u64));
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut host = String::new();
    let mut header = String::new();
    while reader.read_line(&mut header)? > 2 {
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("host")
        {
            host = host_of(value.trim()).to_ascii_lowercase();
        }
        header.clear();
    }
    let mut words = line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no request line",
        ));
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = percent_decode(path)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad percent-encoding"))?;
    Ok(Some(Request {
        method: method.to_string(),
        path,
        query: query.to_string(),
        host,
    }))
}

/// Writes `response`, without its body for a HEAD request.
pub fn write_response(stream: &mut TcpStream, response: &Response, head: bool) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nX-Content-Type-Options: nosniff\r\nContent-Security-Policy: default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:\r\nCache-Control: no-store\r\nConnection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    if response.status == 405 {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes())?;
    if !head {
        stream.write_all(&response.body)?;
    }
    stream.flush()
}

/// `%XX` sequences decoded; `None` for a broken one or a result that is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_reveals_what_a_path_really_names() {
        assert_eq!(
            percent_decode("/runs/%2e%2e/x").as_deref(),
            Some("/runs/../x")
        );
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/bad%2"), None);
        assert_eq!(percent_decode("/bad%zz"), None);
        assert_eq!(percent_decode("/%ff"), None, "not UTF-8");
    }
}
