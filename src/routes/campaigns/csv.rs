//! A CSV upload's audience, read record by record as it arrives.

use actix_web::web;
use futures_util::{stream, Stream, StreamExt};

use crate::domain::{FieldError, Psid};

/// The PSIDs of a CSV upload as they arrive, record by record: the first record names the
/// columns (one of them `psid`); a record that is malformed or holds no PSID is an error naming
/// the line it starts on. The `csv` crate reads each record, so quoted fields may hold commas,
/// quotes and line breaks, and lines may end in LF, CRLF or a lone CR.
pub(super) fn csv_members(payload: web::Payload) -> impl Stream<Item = Result<Psid, FieldError>> {
    let reader = CsvRecords {
        payload,
        buffer: Vec::new(),
        start: 0,
        line: 1,
        psid_column: None,
        blank_since: None,
        done: false,
        failed: false,
    };
    stream::unfold(reader, |mut reader| async move {
        let item = reader.next().await?;
        Some((item, reader))
    })
}

/// Reads a CSV body record by record from the request's stream, keeping at most one partial
/// record in memory.
struct CsvRecords {
    payload: web::Payload,
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts.
    start: usize,
    /// The line the next record starts on (the header is line 1).
    line: u64,
    psid_column: Option<usize>,
    /// A blank line, allowed only at the end.
    blank_since: Option<u64>,
    /// The body has been read to its end.
    done: bool,
    /// A record was refused: the stream ends there.
    failed: bool,
}

impl CsvRecords {
    async fn next(&mut self) -> Option<Result<Psid, FieldError>> {
        if self.failed {
            return None;
        }
        let item = self.next_psid().await;
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }

    async fn next_psid(&mut self) -> Option<Result<Psid, FieldError>> {
        loop {
            let (fields, line) = match self.next_record().await {
                Ok(Some(record)) => record,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            let place = format!("line {line}");
            if fields.iter().all(|f| f.trim().is_empty()) {
                self.blank_since.get_or_insert(line);
                continue;
            }
            if let Some(blank) = self.blank_since {
                return Some(Err(FieldError::new(format!("line {blank}"), "is empty")));
            }
            let Some(column) = self.psid_column else {
                match fields
                    .iter()
                    // A spreadsheet's "CSV UTF-8" starts with a byte order mark.
                    .position(|f| {
                        f.trim_start_matches('\u{feff}')
                            .trim()
                            .eq_ignore_ascii_case("psid")
                    }) {
                    Some(i) => self.psid_column = Some(i),
                    None => {
                        return Some(Err(FieldError::new(place, "the header has no psid column")))
                    }
                }
                continue;
            };
            let psid = fields.get(column).map(|f| f.trim()).unwrap_or_default();
            return Some(Psid::parse(psid).map_err(|e| FieldError::new(place, e)));
        }
    }

    /// The next record's fields (none for a blank line) and the line it starts on; `None` at
    /// the end.
    async fn next_record(&mut self) -> Result<Option<(Vec<String>, u64)>, FieldError> {
        loop {
            let line = self.line;
            let unread = &self.buffer[self.start..];
            if let Some((consumed, fields)) = next_record(unread, self.done)
                .map_err(|e| FieldError::new(format!("line {line}"), e))?
            {
                self.line += line_ends(&unread[..consumed]);
                self.start += consumed;
                return Ok(Some((fields, line)));
            }
            if self.done {
                return Ok(None);
            }
            if unread.len() > MAX_CSV_RECORD {
                self.done = true;
                return Err(FieldError::new(
                    format!("line {line}"),
                    "starts a record longer than 64 KiB",
                ));
            }
            // What was read is gone from the buffer before more is read: memory holds a chunk
            // and a partial record, whatever the size of the upload.
            self.buffer.drain(..self.start);
            self.start = 0;
            match self.payload.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    self.done = true;
                    return Err(FieldError::new("body", format!("could not be read: {e}")));
                }
                None => self.done = true,
            }
        }
    }
}

/// The longest CSV record Herald reads.
const MAX_CSV_RECORD: usize = 64 * 1024;

/// The first record of `unread` and how many bytes it took with its line end, or `None` when
/// more input is needed (or, at the `end` of the body, there is none). A blank line is a record
/// with no fields: the `csv` crate would skip it, and Herald refuses one before the last record.
/// A record is taken only once something follows it: the next chunk could still extend it.
fn next_record(unread: &[u8], end: bool) -> Result<Option<(usize, Vec<String>)>, String> {
    let blank = match unread {
        [b'\r', b'\n', ..] => Some(2),
        [b'\r'] if !end => return Ok(None),
        [b'\n' | b'\r', ..] => Some(1),
        [] => return Ok(None),
        _ => None,
    };
    if let Some(consumed) = blank {
        return Ok(Some((consumed, Vec::new())));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(unread);
    let mut record = csv::ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        Err(e) => return Err(format!("is not valid CSV: {e}")),
    }
    let mut consumed = usize::try_from(reader.position().byte()).unwrap_or(usize::MAX);
    if consumed >= unread.len() && !end {
        return Ok(None);
    }
    consumed = consumed.min(unread.len());
    if unread[..consumed].ends_with(b"\r") && unread.get(consumed) == Some(&b'\n') {
        consumed += 1;
    }
    let fields = record
        .iter()
        .map(|f| String::from_utf8(f.to_vec()).map_err(|_| "is not UTF-8".to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((consumed, fields)))
}

/// How many lines `text` ends: LF, CRLF and a lone CR each end one.
fn line_ends(text: &[u8]) -> u64 {
    let mut ends = 0;
    let mut bytes = text.iter().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\n' => ends += 1,
            b'\r' if bytes.peek() != Some(&&b'\n') => ends += 1,
            _ => {}
        }
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record of `text` read as the stream reads it, one chunk of `chunk` bytes at a
    /// time: the fields and the line each starts on.
    fn records(text: &str, chunk: usize) -> Vec<(u64, Vec<String>)> {
        let bytes = text.as_bytes();
        let (mut out, mut start, mut line, mut have) = (Vec::new(), 0, 1, 0);
        loop {
            let end = have >= bytes.len();
            match next_record(&bytes[start..have.min(bytes.len())], end).expect("csv") {
                Some((consumed, fields)) => {
                    out.push((line, fields));
                    line += line_ends(&bytes[start..start + consumed]);
                    start += consumed;
                }
                None if end => return out,
                None => have += chunk,
            }
        }
    }

    fn fields(row: &[&str]) -> Vec<String> {
        row.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn records_keep_quoted_commas_quotes_and_line_breaks_in_any_chunking() {
        let text =
            "psid,name\r\n4242,\"Lovelace, Ada\"\r4243,\"two\nlines \"\"quoted\"\"\"\n4244,x";
        let expected = vec![
            (1, fields(&["psid", "name"])),
            (2, fields(&["4242", "Lovelace, Ada"])),
            (3, fields(&["4243", "two\nlines \"quoted\""])),
            (5, fields(&["4244", "x"])),
        ];
        for chunk in [1, 2, 3, 7, 64] {
            assert_eq!(records(text, chunk), expected, "in chunks of {chunk}");
        }
    }

    #[test]
    fn blank_lines_are_records_without_fields() {
        let got = records("psid\r\n\r\n\n\r9701\n", 1);
        let lines: Vec<(u64, usize)> = got.iter().map(|(l, f)| (*l, f.len())).collect();
        assert_eq!(lines, [(1, 1), (2, 0), (3, 0), (4, 0), (5, 1)]);
    }
}
