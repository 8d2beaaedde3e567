//! Bytes written on a blocking thread, streamed as an HTTP body (a response, or a request made
//! with reqwest): a bounded channel, so the writer waits for the reader and memory stays flat.

use std::io::{self, Write};

use axum::body::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

/// The writing end; fails once the reading end is gone.
#[derive(Debug, Clone)]
pub struct BlockingWriter(mpsc::Sender<Result<Bytes, io::Error>>);

impl BlockingWriter {
    /// Ends the body with an error, so the reader sees a cut-off transfer, not a complete one.
    pub fn fail(&self, message: String) {
        let _ = self.0.blocking_send(Err(io::Error::other(message)));
    }
}

impl Write for BlockingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the other end went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer for a blocking thread and the stream of what it writes (`capacity` chunks in flight).
pub fn channel(
    capacity: usize,
) -> (
    BlockingWriter,
    impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static,
) {
    let (tx, rx) = mpsc::channel(capacity);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (BlockingWriter(tx), stream)
}
