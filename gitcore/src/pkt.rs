//! pkt-line reading and writing on top of `gix-packetline`, plus the side-band writer.

use std::io::{self, Read, Write};

use gix_packetline::blocking_io::encode;
use gix_packetline::blocking_io::StreamingPeekableIter;
use gix_packetline::{Channel, PacketLineRef};

/// Largest payload of one side-band-64k packet (65520 - 4 length bytes - 1 band byte).
pub const MAX_BAND_DATA: usize = 65515;

/// One pkt-line read from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A data line, with a trailing `\n` removed.
    Data(Vec<u8>),
    /// `0000`.
    Flush,
    /// `0001`.
    Delimiter,
    /// `0002`.
    ResponseEnd,
}

/// Errors reading pkt-lines.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The underlying stream failed or ended early.
    #[error("could not read a pkt-line")]
    Io(#[from] io::Error),
    /// The bytes are not a pkt-line.
    #[error("malformed pkt-line: {0}")]
    Malformed(String),
    /// The stream ended where a pkt-line was expected.
    #[error("unexpected end of the request")]
    Eof,
}

/// Reads pkt-lines from a client request, one at a time, never reading past the current line.
pub struct Reader<R: Read> {
    inner: StreamingPeekableIter<R>,
}

impl<R: Read> Reader<R> {
    /// Wraps `read`.
    pub fn new(read: R) -> Self {
        Self {
            inner: StreamingPeekableIter::new(read, &[], false),
        }
    }

    /// The next line; `Err(Eof)` at the end of the input.
    pub fn line(&mut self) -> Result<Line, ReadError> {
        match self.inner.read_line() {
            None => Err(ReadError::Eof),
            Some(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Err(ReadError::Eof),
            Some(Err(e)) => Err(ReadError::Io(e)),
            Some(Ok(Err(e))) => Err(ReadError::Malformed(e.to_string())),
            Some(Ok(Ok(line))) => Ok(match line {
                PacketLineRef::Data(d) => Line::Data(d.strip_suffix(b"\n").unwrap_or(d).to_vec()),
                PacketLineRef::Flush => Line::Flush,
                PacketLineRef::Delimiter => Line::Delimiter,
                PacketLineRef::ResponseEnd => Line::ResponseEnd,
            }),
        }
    }

    /// The next line, or `None` at end of input (a client may omit trailing lines).
    pub fn line_or_eof(&mut self) -> Result<Option<Line>, ReadError> {
        match self.line() {
            Ok(l) => Ok(Some(l)),
            Err(ReadError::Eof) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The stream after the last line read (where a pack starts).
    pub fn into_inner(self) -> R {
        self.inner.into_inner()
    }
}

/// Writes one data pkt-line.
pub fn data(out: &mut impl Write, line: &[u8]) -> io::Result<()> {
    encode::data_to_write(line, out).map(|_| ())
}

/// Writes one text pkt-line (`text` + `\n`).
pub fn text(out: &mut impl Write, text: &str) -> io::Result<()> {
    encode::text_to_write(text.as_bytes(), out).map(|_| ())
}

/// Writes a flush packet.
pub fn flush(out: &mut impl Write) -> io::Result<()> {
    encode::flush_to_write(out).map(|_| ())
}

/// Writes a delimiter packet.
pub fn delim(out: &mut impl Write) -> io::Result<()> {
    encode::delim_to_write(out).map(|_| ())
}

/// Writes an `ERR` packet.
pub fn err(out: &mut impl Write, message: &str) -> io::Result<()> {
    encode::error_to_write(message.as_bytes(), out).map(|_| ())
}

/// Writes `data` on side-band `channel`, split into packets that fit side-band-64k.
pub fn band(out: &mut impl Write, channel: Channel, data: &[u8]) -> io::Result<()> {
    for chunk in data.chunks(MAX_BAND_DATA) {
        encode::band_to_write(channel, chunk, &mut *out)?;
    }
    Ok(())
}

/// A `Write` that wraps everything into side-band-64k data packets (band 1).
pub struct SideBand<W: Write> {
    inner: W,
}

impl<W: Write> SideBand<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self { inner }
    }

    /// Sends a progress message on band 2.
    pub fn progress(&mut self, message: &str) -> io::Result<()> {
        band(&mut self.inner, Channel::Progress, message.as_bytes())
    }

    /// Sends an error message on band 3.
    pub fn error(&mut self, message: &str) -> io::Result<()> {
        band(&mut self.inner, Channel::Error, message.as_bytes())
    }

    /// The wrapped writer.
    pub fn inner_mut(&mut self) -> &mut W {
        &mut self.inner
    }
}

impl<W: Write> Write for SideBand<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(MAX_BAND_DATA);
        encode::band_to_write(Channel::Data, &buf[..n], &mut self.inner)?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lines_flushes_and_rejects_garbage() {
        let mut r = Reader::new(&b"0009want\n00000001000ahello\n"[..]);
        assert_eq!(r.line().expect("line"), Line::Data(b"want".to_vec()));
        assert_eq!(r.line().expect("flush"), Line::Flush);
        assert_eq!(r.line().expect("delim"), Line::Delimiter);
        assert_eq!(r.line().expect("data"), Line::Data(b"hello".to_vec()));
        assert!(matches!(r.line(), Err(ReadError::Eof)));
        assert!(matches!(
            Reader::new(&b"zzzz"[..]).line(),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(
            Reader::new(&b"0010abc"[..]).line(),
            Err(ReadError::Eof)
        ));
        assert!(Reader::new(&b"0003"[..]).line().is_err());
    }

    #[test]
    fn side_band_splits_large_writes() {
        let mut out = Vec::new();
        let mut sb = SideBand::new(&mut out);
        std::io::Write::write_all(&mut sb, &vec![7u8; MAX_BAND_DATA + 10]).expect("write");
        assert_eq!(&out[..5], b"fff0\x01");
        assert_eq!(out.len(), 4 + 1 + MAX_BAND_DATA + 4 + 1 + 10);
    }
}
