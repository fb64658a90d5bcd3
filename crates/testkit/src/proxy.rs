//! A TCP fault proxy between a client and Redis: latency, a black hole,
//! connection resets and a reply cut in the middle, switchable at run time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to the traffic; see [`FaultProxy::set`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fault {
    /// Forward everything unchanged.
    #[default]
    Pass,
    /// Hold every chunk of the server's replies this long before forwarding it.
    Latency(Duration),
    /// Accept connections and read from them, but forward nothing either way:
    /// nothing is ever answered. A connection that lost bytes this way stays
    /// silent after the fault is lifted (its request/reply stream is broken);
    /// the client must drop it. New connections work again.
    BlackHole,
    /// Reset (TCP RST) every open connection at once, and every new one as
    /// soon as it is accepted.
    Reset,
    /// While in force, forward the first half of each reply chunk from the
    /// server, then reset that connection: the client reads a truncated
    /// reply.
    CutReply,
}

/// A TCP proxy on a free loopback port, in front of `upstream`, that injects a
/// [`Fault`] switchable at run time. Dropping it stops accepting and closes
/// every proxied connection.
///
/// ```no_run
/// # async fn demo(upstream: std::net::SocketAddr) -> anyhow::Result<()> {
/// use std::time::Duration;
/// use aeturnis_testkit::{Fault, FaultProxy};
///
/// let proxy = FaultProxy::start(upstream).await?;
/// // connect the client to proxy.url()
/// proxy.set(Fault::Latency(Duration::from_millis(300)));
/// proxy.set(Fault::Pass);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    fault: Arc<watch::Sender<Fault>>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on `127.0.0.1:0` and forwards every accepted connection to
    /// `upstream`, under [`Fault::Pass`].
    ///
    /// # Errors
    /// Fails when the listener cannot be bound.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the fault proxy")?;
        let addr = listener.local_addr()?;
        let (fault, _) = watch::channel(Fault::Pass);
        let fault = Arc::new(fault);
        let faults = fault.clone();
        let accept = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(relay(client, upstream, faults.subscribe()));
                // reap the finished ones so the set does not grow
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(FaultProxy {
            addr,
            fault,
            accept,
        })
    }

    /// The proxy's address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `redis://127.0.0.1:PORT`, the proxy as a standalone server.
    #[must_use]
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port())
    }

    /// Switches the fault; it applies at once to every connection, open or new.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// The fault in force.
    #[must_use]
    pub fn fault(&self) -> Fault {
        *self.fault.borrow()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // the JoinSet inside the accept task aborts every relay when dropped
        self.accept.abort();
    }
}

fn reset(stream: &TcpStream) {
    // SO_LINGER 0: the close sends RST instead of FIN
    let _ = stream.set_zero_linger();
}

/// Relays one connection until either side closes or a fault ends it.
async fn relay(mut client: TcpStream, upstream: SocketAddr, mut faults: watch::Receiver<Fault>) {
    if *faults.borrow_and_update() == Fault::Reset {
        reset(&client);
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        reset(&client);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut up = vec![0_u8; 16 * 1024];
    let mut down = vec![0_u8; 16 * 1024];
    // once bytes were swallowed, the request/reply stream is broken for good
    let mut poisoned = false;
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let fault = *faults.borrow();
                if poisoned || fault == Fault::BlackHole {
                    poisoned = true;
                    continue;
                }
                if server.write_all(&up[..n]).await.is_err() {
                    reset(&client);
                    return;
                }
            }
            read = server.read(&mut down) => {
                let n = match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let fault = *faults.borrow();
                match fault {
                    _ if poisoned => continue,
                    Fault::BlackHole => {
                        poisoned = true;
                        continue;
                    }
                    Fault::Reset => {
                        reset(&client);
                        reset(&server);
                        return;
                    }
                    Fault::CutReply => {
                        let _ = client.write_all(&down[..n / 2]).await;
                        let _ = client.flush().await;
                        reset(&client);
                        reset(&server);
                        return;
                    }
                    Fault::Latency(delay) => tokio::time::sleep(delay).await,
                    Fault::Pass => {}
                }
                if client.write_all(&down[..n]).await.is_err() {
                    reset(&server);
                    return;
                }
            }
            changed = faults.changed() => {
                if changed.is_err() || *faults.borrow_and_update() == Fault::Reset {
                    reset(&client);
                    reset(&server);
                    return;
                }
            }
        }
    }
}
