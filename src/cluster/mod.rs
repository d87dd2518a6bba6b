//! What travels between the nodes of one deployment: one Redis pub/sub
//! channel (`{prefix}leadchat:feed`) that every node publishes on and
//! listens to. This module is only the channel — it knows no message —
//! and the modules that talk over it own their messages:
//!
//! - `admin::replication`: admin-feed replication (`changed`, `closed`,
//!   `hello`, `interest`), so an admin on any node sees every live session;
//! - `session::peers`: session handover (`release`, `released`), forwarded
//!   calls (`end_remote`, `ended_remote`: ending a session another node
//!   holds) and relayed tabs (`relay`).
//!
//! Every message is a JSON object whose first member is its `kind`; the
//! listener reads only that to route the message to the module that
//! registered the kind, which parses the rest. A kind nobody registered is
//! dropped (a newer node's message during a rolling upgrade).

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;

use crate::store::conn::RedisConn;

/// The publishing side; clone it freely.
#[derive(Clone)]
pub struct ClusterChannel {
    conn: RedisConn,
    channel: String,
}

impl ClusterChannel {
    pub fn new(conn: RedisConn, channel: String) -> Self {
        Self { conn, channel }
    }

    /// Publishes `message` to every node (this one included). Best effort:
    /// a Redis that is away loses it, and every protocol on the channel has
    /// a time-out for an answer that never comes.
    pub async fn publish(&self, message: &impl Serialize) {
        let Ok(payload) = serde_json::to_string(message) else {
            return;
        };
        let mut conn = self.conn.clone();
        let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(&mut conn)
            .await;
        if let Err(err) = sent {
            tracing::debug!(error = %err, "cannot publish on the cluster channel");
        }
    }
}

type Handler = Rc<dyn Fn(String)>;

/// Which module takes which kinds, and who is told when the channel is
/// (re)subscribed.
#[derive(Default)]
pub struct Routes {
    by_kind: HashMap<&'static str, Handler>,
    on_subscribed: Vec<Rc<dyn Fn()>>,
    alive: Vec<Rc<dyn Fn() -> bool>>,
}

impl Routes {
    /// Messages of `kinds` go to `handler` (the whole JSON text).
    pub fn route(mut self, kinds: &[&'static str], handler: impl Fn(String) + 'static) -> Self {
        let handler: Handler = Rc::new(handler);
        for kind in kinds {
            self.by_kind.insert(kind, Rc::clone(&handler));
        }
        self
    }

    /// Called after every (re)subscription, before any message: the place
    /// to ask the other nodes for what may have been missed.
    pub fn on_subscribed(mut self, f: impl Fn() + 'static) -> Self {
        self.on_subscribed.push(Rc::new(f));
        self
    }

    /// The listener stops once any of these says its module is gone.
    pub fn while_alive(mut self, f: impl Fn() -> bool + 'static) -> Self {
        self.alive.push(Rc::new(f));
        self
    }

    fn alive(&self) -> bool {
        self.alive.iter().all(|f| f())
    }

    fn dispatch(&self, payload: String) {
        match kind_of(&payload).and_then(|kind| self.by_kind.get(kind)) {
            Some(handler) => handler(payload),
            None => tracing::debug!("ignoring a cluster message of a kind nobody here takes"),
        }
    }
}

/// The `kind` a message starts with (`{"kind":"…"`), without parsing the
/// rest: a node's feed changes are large and most are not for the reader.
pub fn kind_of(payload: &str) -> Option<&str> {
    let rest = payload.strip_prefix(r#"{"kind":""#)?;
    rest.split_once('"').map(|(kind, _)| kind)
}

/// Listens on the channel for as long as the routes are alive, reconnecting
/// after a Redis outage. In a Redis Cluster a message published on any
/// node reaches subscribers on every node, so the listener subscribes on
/// one seed and moves to the next when that one is gone. Runs on the
/// current actix arbiter.
pub fn spawn_listener(seeds: Vec<String>, channel: String, routes: Routes) {
    actix::spawn(async move {
        for redis_url in seeds.iter().cycle() {
            match listen(redis_url, &channel, &routes).await {
                Ok(()) => tracing::warn!("cluster channel closed; resubscribing"),
                Err(err) => tracing::warn!(error = %err, "cluster channel unavailable; retrying"),
            }
            if !routes.alive() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

async fn listen(url: &str, channel: &str, routes: &Routes) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    // Subscribed first, then asked: nothing answered can be missed.
    for f in &routes.on_subscribed {
        f();
    }
    let mut messages = pubsub.into_on_message();
    while let Some(msg) = messages.next().await {
        if !routes.alive() {
            return Ok(());
        }
        if let Ok(payload) = msg.get_payload::<String>() {
            routes.dispatch(payload);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn messages_are_routed_by_their_leading_kind() {
        assert_eq!(kind_of(r#"{"kind":"release","node":"a"}"#), Some("release"));
        assert_eq!(kind_of(r#"{"node":"a","kind":"release"}"#), None);
        assert_eq!(kind_of("not json"), None);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let (a, b) = (Rc::clone(&seen), Rc::clone(&seen));
        let routes = Routes::default()
            .route(&["hello", "changed"], move |p| {
                a.borrow_mut().push(("feed", p))
            })
            .route(&["release"], move |p| b.borrow_mut().push(("session", p)));
        routes.dispatch(r#"{"kind":"changed","node":"x"}"#.into());
        routes.dispatch(r#"{"kind":"release","node":"x"}"#.into());
        routes.dispatch(r#"{"kind":"from_the_future"}"#.into());
        let seen = seen.borrow();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0, "feed");
        assert_eq!(seen[1].0, "session");
    }
}
