//! The community hub as a library on loopback: an instance on a free port, and agents
//! enrolled from loopback source addresses of their own (127.0.N.x: the hub sees them in
//! distinct /24 networks, or in one, as each test needs).

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use crowdwall_daemon::community::client::{Credentials, HubClient};
use crowdwall_hub::store::HubStore;
use crowdwall_hub::{serve, Hub, HubSection};
use crowdwall_proto::Signal;

/// Now, in Unix seconds.
pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The hub's defaults without the rate limit (tests make many requests from one address).
pub fn cfg() -> HubSection {
    HubSection {
        rate_limit: 0,
        ..HubSection::default()
    }
}

/// A running hub instance on 127.0.0.1 (a free port); stops when dropped.
pub struct TestHub {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestHub {
    /// Opens the store at `database` (`sqlite:PATH` or a PostgreSQL URL) and serves it.
    pub async fn start(database: &str, cfg: HubSection) -> TestHub {
        let store = HubStore::open(database).await.expect("open hub store");
        let hub = Hub::new(cfg, store).expect("hub");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            serve(listener, hub, async {
                let _ = rx.await;
            })
            .await
            .expect("serve");
        });
        TestHub {
            addr,
            stop: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// An agent enrolled from `from` (its loopback source address).
pub struct TestAgent {
    pub client: HubClient,
    pub creds: Credentials,
    pub from: IpAddr,
    seq: u32,
}

/// Enrols an agent that talks to `hub` from the loopback address `from`.
pub async fn enrol(hub: &TestHub, from: &str) -> TestAgent {
    let local: IpAddr = from.parse().unwrap();
    let anon = HubClient::with_local_address(&hub.url(), None, Some(local)).unwrap();
    let r = anon.enroll("test", None).await.expect("enrol");
    assert_eq!(r.secret.len(), 64);
    let creds = Credentials {
        hub: hub.url(),
        agent_id: r.agent_id,
        secret: r.secret,
    };
    TestAgent {
        client: HubClient::with_local_address(&hub.url(), Some(&creds), Some(local)).unwrap(),
        creds,
        from: local,
        seq: 0,
    }
}

impl TestAgent {
    /// The same agent talking to another hub instance.
    pub fn on(&self, hub: &TestHub) -> HubClient {
        HubClient::with_local_address(&hub.url(), Some(&self.creds), Some(self.from)).unwrap()
    }

    /// A fresh ssh-bruteforce signal on `ip` (a new uid each time).
    pub fn signal(&mut self, ip: &str) -> Signal {
        self.seq += 1;
        Signal {
            uid: format!("u{}", self.seq),
            ip: ip.into(),
            scenario: "ssh-bruteforce".into(),
            first_seen: now_s() - 60,
            last_seen: now_s() - 30,
            events: 6,
        }
    }

    /// Pushes one fresh signal on `ip`.
    pub async fn report(&mut self, ip: &str) -> crowdwall_proto::PushResponse {
        let s = self.signal(ip);
        self.client.push(&[s]).await.expect("push")
    }
}
