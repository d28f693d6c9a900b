//! Guest stdout and stderr: every line to the log with the workflow id, and
//! the tail of stderr kept to explain a failure.

use std::sync::{Arc, Mutex};

/// A guest output stream: every complete line goes to `tracing` with the
/// workflow id, and the last `tail_bytes` are kept to explain a failure.
/// Writes never fail, so a chatty guest cannot trap on its own logging.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    inner: Arc<Mutex<OutputBuffer>>,
}

struct OutputBuffer {
    workflow_id: String,
    stream: &'static str,
    line: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    tail_bytes: usize,
}

impl GuestOutput {
    pub(super) fn new(workflow_id: &str, stream: &'static str, tail_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(OutputBuffer {
                workflow_id: workflow_id.to_owned(),
                stream,
                line: Vec::new(),
                tail: std::collections::VecDeque::new(),
                tail_bytes,
            })),
        }
    }

    fn write(&self, bytes: &[u8]) {
        let mut buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        buf.write(bytes);
    }

    /// The kept tail, lossily decoded, trimmed.
    pub(crate) fn tail(&self) -> String {
        let buf = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: Vec<u8> = buf.tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }
}

impl OutputBuffer {
    /// Lines longer than this are logged in pieces.
    const MAX_LINE: usize = 8192;

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' || self.line.len() >= Self::MAX_LINE {
                self.emit_line();
            }
            if b != b'\n' {
                self.line.push(b);
            }
        }
        if self.tail_bytes > 0 {
            self.tail.extend(bytes);
            let excess = self.tail.len().saturating_sub(self.tail_bytes);
            self.tail.drain(..excess);
        }
    }

    fn emit_line(&mut self) {
        let line = String::from_utf8_lossy(&self.line);
        tracing::info!(target: "wf::guest", workflow_id = %self.workflow_id, stream = self.stream, "{line}");
        self.line.clear();
    }
}

impl Drop for OutputBuffer {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.emit_line();
        }
    }
}

impl wasmtime_wasi::cli::IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl wasmtime_wasi::p2::OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        GuestOutput::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        GuestOutput::write(&self, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
