//! Reading the wire: one command line within the RFC's limits, and a message's data up to
//! `<CRLF>.<CRLF>` (never a bare `<LF>.<LF>`), undoing the dot-stuffing.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use super::Limits;

/// How a line was read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// In the buffer, with its line end; an empty buffer is the end of the stream.
    Complete,
    /// Longer than allowed: read to its end and dropped, so the next line is in step.
    TooLong,
}

/// Reads one line ending in LF into `line`, at most `max` bytes with its line end. Never
/// holds more than `max` bytes of it, however long the line is.
pub(super) async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    line.clear();
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            // The stream ended; a partial last line is no command.
            line.clear();
            return Ok(Line::Complete);
        }
        let (taken, ended) = match memchr::memchr(b'\n', available) {
            Some(at) => (&available[..=at], true),
            None => (available, false),
        };
        if !too_long && line.len() + taken.len() > max {
            too_long = true;
            line.clear();
        }
        if !too_long {
            line.extend_from_slice(taken);
        }
        let consumed = taken.len();
        reader.consume(consumed);
        if ended {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

/// The message a client sent after DATA, or why it cannot be taken.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Data {
    Message(Vec<u8>),
    LineTooLong,
    TooBig,
}

/// Reads the message up to `<CRLF>.<CRLF>`, undoing dot-stuffing. Once a limit is passed
/// the rest is still read (to stay in step with the client) but not kept.
pub(super) async fn read_data<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limits: Limits,
) -> std::io::Result<Data> {
    let mut message = Vec::new();
    let mut refused = None;
    // The CRLF of the DATA command itself precedes the first line.
    let mut after_crlf = true;
    loop {
        let read = tokio::time::timeout(limits.idle, read_line(reader, line, limits.text_line))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle in DATA"))??;
        match read {
            Line::Complete if line.is_empty() => {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Line::Complete if after_crlf && line.as_slice() == b".\r\n" => {
                return Ok(refused.unwrap_or(Data::Message(message)));
            }
            Line::Complete => {
                // A line starts after a CRLF; a dot after a bare LF is data, not stuffing.
                let unstuffed = match line.strip_prefix(b".") {
                    Some(rest) if after_crlf => rest,
                    _ => line.as_slice(),
                };
                after_crlf = line.ends_with(b"\r\n");
                if refused.is_none() && message.len() + unstuffed.len() > limits.message {
                    refused = Some(Data::TooBig);
                }
                if refused.is_none() {
                    message.extend_from_slice(unstuffed);
                }
            }
            Line::TooLong => {
                // Read to its LF; whether a CR came before it no longer matters: the
                // message is refused either way.
                after_crlf = true;
                refused.get_or_insert(Data::LineTooLong);
            }
        }
    }
}
