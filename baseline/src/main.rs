//! `tokio-echo`: the echo server people would write with tokio, used as the baseline in
//! benchmarks. It is tokio's own echo example (read into a buffer, write it back), with
//! `TCP_NODELAY`, a `--bind` flag, the `listening on ADDR:PORT` line the benchmark
//! scripts parse, and a clean exit on Ctrl+C or SIGTERM. Lines come back unchanged, so
//! `loadgen --protocol line` measures it.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Echo server on tokio: every byte received is sent back.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7879")]
    bind: SocketAddr,
    /// Runtime worker threads [default: number of cores].
    #[arg(long)]
    workers: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = cli.workers {
        anyhow::ensure!(workers >= 1, "--workers must be at least 1");
        runtime.worker_threads(workers);
    }
    runtime.build()?.block_on(serve(cli.bind))
}

async fn serve(bind: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    println!("listening on {}", listener.local_addr()?);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (socket, _) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        eprintln!("tokio-echo: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                tokio::spawn(echo(socket));
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
        }
    }
}

async fn echo(mut socket: tokio::net::TcpStream) {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if socket.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
