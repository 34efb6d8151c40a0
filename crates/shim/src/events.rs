//! Events to containerd, in the order they happened: the supervisor's events and the
//! shim's own (exec-added, at the Exec call) go into one queue as they happen, each turned
//! into containerd's message, and are forwarded over containerd's ttrpc socket one after
//! the other. A failed forward is retried (reconnecting) before anything after it is sent,
//! so no event overtakes another.

use containerd_shim_protos::events::task as ev;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::{Client, EventsClient};
use containerd_shim_protos::topics;
use containerd_shim_protos::ttrpc::context;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use supervisor::Event;
use tokio::sync::{broadcast, mpsc, oneshot};

/// How often one event is tried before it is given up (and logged).
const ATTEMPTS: u32 = 5;
/// How long one forward may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// One event for containerd: its topic and the message, packed.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub topic: &'static str,
    pub event: Any,
}

enum Item {
    Event(Outgoing),
    /// Answered once everything before it was sent.
    Flush(oneshot::Sender<()>),
}

/// What the Create call knows and the supervisor's Created event does not: the bundle,
/// the rootfs mounts and the stdio, for `/tasks/create`.
pub type CreateInfo = Arc<Mutex<HashMap<String, ev::TaskCreate>>>;

/// The handle the service sends its own events (and flushes) through.
#[derive(Clone)]
pub struct Publisher {
    queue: mpsc::UnboundedSender<Item>,
    flushes: mpsc::UnboundedSender<oneshot::Sender<()>>,
}

impl Publisher {
    /// Start forwarding to containerd at `ttrpc_address` for `namespace`: the supervisor's
    /// events from `events`, and those sent through the returned handle.
    ///
    /// Two tasks: one moves each supervisor event into the queue as soon as it is sent
    /// (it never waits on containerd), so the queue holds every event in the order it
    /// happened, the shim's own included (an exec-added, sent at the Exec call, is queued
    /// before the Start call that makes the exec-started); the other forwards the queue.
    pub fn start(
        ttrpc_address: String,
        namespace: String,
        events: broadcast::Receiver<Event>,
        create_info: CreateInfo,
    ) -> Publisher {
        let (queue, rx) = mpsc::unbounded_channel();
        let (flushes, flush_rx) = mpsc::unbounded_channel();
        let forwarder = Forwarder {
            address: ttrpc_address,
            namespace,
            client: None,
        };
        tokio::spawn(enqueue(events, flush_rx, queue.clone(), create_info));
        tokio::spawn(forward(forwarder, rx));
        Publisher { queue, flushes }
    }

    pub fn send(&self, e: Outgoing) {
        let _ = self.queue.send(Item::Event(e));
    }

    /// Wait (at most `timeout`) until every event so far has been forwarded.
    pub async fn flush(&self, timeout: Duration) {
        let (tx, rx) = oneshot::channel();
        if self.flushes.send(tx).is_ok() {
            let _ = tokio::time::timeout(timeout, rx).await;
        }
    }
}

/// Move the supervisor's events into the queue; a flush goes in after every event sent
/// before it was asked for.
async fn enqueue(
    mut events: broadcast::Receiver<Event>,
    mut flushes: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
    queue: mpsc::UnboundedSender<Item>,
    create_info: CreateInfo,
) {
    let push = |e: Event| {
        if let Some(out) = translate(e, &create_info) {
            let _ = queue.send(Item::Event(out));
        }
    };
    loop {
        tokio::select! {
            biased;
            e = events.recv() => match e {
                Ok(e) => push(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::error!("{n} events were lost: the publisher fell behind");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            flush = flushes.recv() => match flush {
                Some(done) => {
                    while let Ok(e) = events.try_recv() {
                        push(e);
                    }
                    let _ = queue.send(Item::Flush(done));
                }
                None => return,
            },
        }
    }
}

/// Forward the queue to containerd, one event after the other.
async fn forward(mut to: Forwarder, mut queue: mpsc::UnboundedReceiver<Item>) {
    while let Some(item) = queue.recv().await {
        match item {
            Item::Event(out) => to.forward(out).await,
            Item::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// The protobuf package of containerd's task events.
const EVENTS_PACKAGE: &str = "containerd.events";

/// An event packed as containerd reads it: the type URL is the message's bare full name.
/// (Named from the package, not from the message's reflection descriptor, whose first use
/// parses the descriptors of every proto file it depends on: a few hundred kB a shim would
/// keep for nothing.)
pub fn pack<M: Message>(m: &M) -> Any {
    Any {
        type_url: format!("{EVENTS_PACKAGE}.{}", M::NAME),
        value: m.write_to_bytes().unwrap_or_default(),
        ..Default::default()
    }
}

fn timestamp(t: SystemTime) -> Timestamp {
    t.into()
}

fn pid(p: i32) -> u32 {
    u32::try_from(p).unwrap_or(0)
}

fn status(s: i32) -> u32 {
    u32::try_from(s).unwrap_or(255)
}

/// The supervisor's event as containerd's; `None` for those the shim sends itself
/// (exec-added goes out at the Exec call, before the process is started).
pub fn translate(e: Event, create_info: &CreateInfo) -> Option<Outgoing> {
    let (topic, event) = match e {
        Event::Created { id, pid: p } => {
            let mut m = create_info
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id)
                .unwrap_or_default();
            m.container_id = id;
            m.pid = pid(p);
            (topics::TASK_CREATE_EVENT_TOPIC, pack(&m))
        }
        Event::Started { id, pid: p } => {
            let m = ev::TaskStart {
                container_id: id,
                pid: pid(p),
                ..Default::default()
            };
            (topics::TASK_START_EVENT_TOPIC, pack(&m))
        }
        Event::ExecAdded { .. } => return None,
        Event::ExecStarted {
            id,
            exec_id,
            pid: p,
        } => {
            let m = ev::TaskExecStarted {
                container_id: id,
                exec_id,
                pid: pid(p),
                ..Default::default()
            };
            (topics::TASK_EXEC_STARTED_EVENT_TOPIC, pack(&m))
        }
        Event::Exit {
            id,
            exec_id,
            pid: p,
            status: s,
            exited_at,
        } => {
            let m = ev::TaskExit {
                container_id: id,
                id: exec_id,
                pid: pid(p),
                exit_status: status(s),
                exited_at: Some(timestamp(exited_at)).into(),
                ..Default::default()
            };
            (topics::TASK_EXIT_EVENT_TOPIC, pack(&m))
        }
        Event::Oom { id } => {
            let m = ev::TaskOOM {
                container_id: id,
                ..Default::default()
            };
            (topics::TASK_OOM_EVENT_TOPIC, pack(&m))
        }
        Event::Paused { id } => {
            let m = ev::TaskPaused {
                container_id: id,
                ..Default::default()
            };
            (topics::TASK_PAUSED_EVENT_TOPIC, pack(&m))
        }
        Event::Resumed { id } => {
            let m = ev::TaskResumed {
                container_id: id,
                ..Default::default()
            };
            (topics::TASK_RESUMED_EVENT_TOPIC, pack(&m))
        }
        Event::Deleted {
            id,
            pid: p,
            status: s,
            exited_at,
        } => {
            let m = ev::TaskDelete {
                container_id: id.clone(),
                id,
                pid: pid(p),
                exit_status: status(s),
                exited_at: Some(timestamp(exited_at)).into(),
                ..Default::default()
            };
            (topics::TASK_DELETE_EVENT_TOPIC, pack(&m))
        }
    };
    Some(Outgoing { topic, event })
}

/// The exec-added event, sent by the Exec call.
pub fn exec_added(id: &str, exec_id: &str) -> Outgoing {
    let m = ev::TaskExecAdded {
        container_id: id.to_string(),
        exec_id: exec_id.to_string(),
        ..Default::default()
    };
    Outgoing {
        topic: topics::TASK_EXEC_ADDED_EVENT_TOPIC,
        event: pack(&m),
    }
}

/// The connection to containerd's ttrpc socket, made when first needed and again after a
/// failure.
struct Forwarder {
    address: String,
    namespace: String,
    client: Option<EventsClient>,
}

impl Forwarder {
    async fn forward(&mut self, out: Outgoing) {
        let request = ForwardRequest {
            envelope: Some(Envelope {
                timestamp: Some(timestamp(SystemTime::now())).into(),
                namespace: self.namespace.clone(),
                topic: out.topic.to_string(),
                event: Some(out.event).into(),
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let client = match self.client().await {
                Ok(c) => c,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let ctx = context::with_timeout(FORWARD_TIMEOUT.as_nanos() as i64);
            match client.forward(ctx, &request).await {
                Ok(_) => return,
                Err(e) => {
                    last = format!("forward to {}: {e:?}", self.address);
                    self.client = None;
                }
            }
        }
        tracing::error!(
            topic = out.topic,
            "event not delivered after {ATTEMPTS} attempts: {last}"
        );
    }

    async fn client(&mut self) -> Result<&EventsClient, String> {
        if self.client.is_none() {
            let address = if self.address.contains("://") {
                self.address.clone()
            } else {
                format!("unix://{}", self.address)
            };
            let c = Client::connect(&address)
                .await
                .map_err(|e| format!("connect to {address}: {e:?}"))?;
            self.client = Some(EventsClient::new(c));
        }
        Ok(self.client.as_ref().expect("set above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::protobuf::Message;

    #[test]
    fn events_are_packed_as_containerd_reads_them() {
        let info = CreateInfo::default();
        info.lock().unwrap().insert(
            "c".into(),
            ev::TaskCreate {
                bundle: "/b".into(),
                ..Default::default()
            },
        );
        let out = translate(
            Event::Created {
                id: "c".into(),
                pid: 7,
            },
            &info,
        )
        .unwrap();
        assert_eq!(out.topic, "/tasks/create");
        assert_eq!(out.event.type_url, "containerd.events.TaskCreate");
        let m = ev::TaskCreate::parse_from_bytes(&out.event.value).unwrap();
        assert_eq!(
            (m.container_id.as_str(), m.bundle.as_str(), m.pid),
            ("c", "/b", 7)
        );
        assert!(info.lock().unwrap().is_empty());

        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(5);
        let exit = Event::Exit {
            id: "c".into(),
            exec_id: "e".into(),
            pid: 9,
            status: 137,
            exited_at: at,
        };
        let out = translate(exit, &info).unwrap();
        assert_eq!(out.topic, "/tasks/exit");
        let m = ev::TaskExit::parse_from_bytes(&out.event.value).unwrap();
        assert_eq!(
            (m.id.as_str(), m.exit_status, m.exited_at.seconds),
            ("e", 137, 5)
        );
        let added = Event::ExecAdded {
            id: "c".into(),
            exec_id: "e".into(),
        };
        assert_eq!(translate(added, &info), None);
        assert_eq!(
            exec_added("c", "e").event.type_url,
            "containerd.events.TaskExecAdded"
        );
    }
}
