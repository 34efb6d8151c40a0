//! A small, blocking D-Bus client: what the systemd driver needs and no more.
//!
//! One unix-socket connection, `EXTERNAL` authentication, and messages marshalled as the
//! D-Bus specification lays them out (little-endian when we write, either order when we
//! read). No threads, no async runtime, no libdbus: a `runr create` that asks systemd for a
//! scope sends four messages and reads their answers.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// What can go wrong talking to a bus.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("D-Bus {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("D-Bus protocol: {0}")]
    Protocol(String),
    /// The peer answered with an error message.
    #[error("{name}: {message}")]
    Remote { name: String, message: String },
    #[error("D-Bus: no answer to {0} in time")]
    Timeout(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DbusError {
    let what = what.into();
    move |source| DbusError::Io { what, source }
}

fn protocol(msg: impl Into<String>) -> DbusError {
    DbusError::Protocol(msg.into())
}

/// A D-Bus value, with enough type information to marshal it (empty arrays keep their
/// element signature).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    ObjectPath(String),
    Signature(String),
    /// Element signature and elements.
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
}

impl Value {
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Double(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::ObjectPath(_) => "o".into(),
            Value::Signature(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::Variant(_) => "v".into(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::ObjectPath(s) | Value::Signature(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::Byte(n) => Some(n.into()),
            Value::U32(n) => Some(n.into()),
            Value::U64(n) => Some(n),
            _ => None,
        }
    }
}

/// Shorthand for a string value.
pub fn s(v: impl Into<String>) -> Value {
    Value::Str(v.into())
}

/// Message types of the wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MethodCall = 1,
    MethodReturn = 2,
    Error = 3,
    Signal = 4,
}

/// One message, header fields decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub kind: Kind,
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub destination: Option<String>,
    pub sender: Option<String>,
    pub body: Vec<Value>,
}

impl Message {
    pub fn method_call(destination: &str, path: &str, interface: &str, member: &str) -> Self {
        Message {
            kind: Kind::MethodCall,
            serial: 0,
            path: Some(path.into()),
            interface: Some(interface.into()),
            member: Some(member.into()),
            error_name: None,
            reply_serial: None,
            destination: Some(destination.into()),
            sender: None,
            body: Vec::new(),
        }
    }

    pub fn signal(path: &str, interface: &str, member: &str) -> Self {
        Message {
            kind: Kind::Signal,
            destination: None,
            ..Message::method_call("", path, interface, member)
        }
    }

    /// A reply (`MethodReturn` or `Error`) to `to`.
    pub fn reply(to: &Message, kind: Kind) -> Self {
        Message {
            kind,
            serial: 0,
            path: None,
            interface: None,
            member: None,
            error_name: None,
            reply_serial: Some(to.serial),
            destination: to.sender.clone(),
            sender: None,
            body: Vec::new(),
        }
    }

    pub fn with_body(mut self, body: Vec<Value>) -> Self {
        self.body = body;
        self
    }

    /// The body's signature.
    pub fn signature(&self) -> String {
        self.body.iter().map(Value::signature).collect()
    }

    /// Marshal with serial `serial`, little-endian.
    pub fn encode(&self, serial: u32) -> Vec<u8> {
        let mut body = Writer::default();
        for v in &self.body {
            body.value(v);
        }
        let mut fields = Vec::new();
        let mut field = |code: u8, v: Value| {
            fields.push(Value::Struct(vec![
                Value::Byte(code),
                Value::Variant(Box::new(v)),
            ]))
        };
        let text = |v: &Option<String>| v.clone().map(Value::Str);
        if let Some(p) = &self.path {
            field(1, Value::ObjectPath(p.clone()));
        }
        if let Some(v) = text(&self.interface) {
            field(2, v);
        }
        if let Some(v) = text(&self.member) {
            field(3, v);
        }
        if let Some(v) = text(&self.error_name) {
            field(4, v);
        }
        if let Some(n) = self.reply_serial {
            field(5, Value::U32(n));
        }
        if let Some(v) = text(&self.destination) {
            field(6, v);
        }
        if let Some(v) = text(&self.sender) {
            field(7, v);
        }
        if !self.body.is_empty() {
            field(8, Value::Signature(self.signature()));
        }
        let mut out = Writer::default();
        out.buf
            .extend_from_slice(&[b'l', self.kind as u8, 0, PROTOCOL_VERSION]);
        out.buf
            .extend_from_slice(&(body.buf.len() as u32).to_le_bytes());
        out.buf.extend_from_slice(&serial.to_le_bytes());
        out.value(&Value::Array("(yv)".into(), fields));
        out.align(8);
        out.buf.extend_from_slice(&body.buf);
        out.buf
    }

    /// Unmarshal one whole message.
    pub fn decode(bytes: &[u8]) -> Result<Message, DbusError> {
        if bytes.len() < 16 {
            return Err(protocol("message shorter than its fixed header"));
        }
        let big = match bytes[0] {
            b'l' => false,
            b'B' => true,
            other => return Err(protocol(format!("bad endianness byte {other:#x}"))),
        };
        let kind = match bytes[1] {
            1 => Kind::MethodCall,
            2 => Kind::MethodReturn,
            3 => Kind::Error,
            4 => Kind::Signal,
            other => return Err(protocol(format!("unknown message type {other}"))),
        };
        let mut r = Reader {
            buf: bytes,
            pos: 4,
            big,
        };
        let body_len = r.u32()? as usize;
        let serial = r.u32()?;
        let Value::Array(_, fields) = r.value(b"a(yv)")? else {
            unreachable!("an array signature decodes to an array")
        };
        r.align(8)?;
        let mut msg = Message {
            kind,
            serial,
            path: None,
            interface: None,
            member: None,
            error_name: None,
            reply_serial: None,
            destination: None,
            sender: None,
            body: Vec::new(),
        };
        let mut signature = String::new();
        for f in fields {
            let Value::Struct(parts) = f else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (parts.first(), parts.get(1))
            else {
                continue;
            };
            let text = v.as_str().map(str::to_string);
            match code {
                1 => msg.path = text,
                2 => msg.interface = text,
                3 => msg.member = text,
                4 => msg.error_name = text,
                5 => msg.reply_serial = v.as_u64().map(|n| n as u32),
                6 => msg.destination = text,
                7 => msg.sender = text,
                8 => signature = text.unwrap_or_default(),
                _ => {}
            }
        }
        let end = r.pos + body_len;
        if end > bytes.len() {
            return Err(protocol("body longer than the message"));
        }
        // The body starts 8-aligned, so aligning from the message start is the same as from
        // the body's.
        let mut sig = signature.as_bytes();
        while !sig.is_empty() {
            let (one, rest) = split_type(sig)?;
            msg.body.push(r.value(one)?);
            sig = rest;
        }
        if r.pos != end {
            return Err(protocol("body does not match its signature"));
        }
        Ok(msg)
    }
}

const PROTOCOL_VERSION: u8 = 1;

/// Alignment of the type a signature starts with.
fn alignment(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        _ => 8, // x t d ( {
    }
}

/// Split the first complete type off a signature.
fn split_type(sig: &[u8]) -> Result<(&[u8], &[u8]), DbusError> {
    fn len(sig: &[u8]) -> Result<usize, DbusError> {
        match sig.first() {
            None => Err(protocol("signature ends inside a type")),
            Some(b'a') => Ok(1 + len(&sig[1..])?),
            Some(&open @ (b'(' | b'{')) => {
                let close = if open == b'(' { b')' } else { b'}' };
                let mut i = 1;
                while sig.get(i) != Some(&close) {
                    if i >= sig.len() {
                        return Err(protocol("unbalanced signature"));
                    }
                    i += len(&sig[i..])?;
                }
                Ok(i + 1)
            }
            Some(_) => Ok(1),
        }
    }
    let n = len(sig)?;
    Ok(sig.split_at(n))
}

#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn align(&mut self, n: usize) {
        self.buf.resize(self.buf.len().next_multiple_of(n), 0);
    }

    fn u32(&mut self, n: u32) {
        self.align(4);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    fn text(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn signature(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I32(n) => self.u32(*n as u32),
            Value::U32(n) => self.u32(*n),
            Value::I64(n) => self.u64(*n as u64),
            Value::U64(n) => self.u64(*n),
            Value::Double(d) => self.u64(d.to_bits()),
            Value::Str(s) | Value::ObjectPath(s) => self.text(s),
            Value::Signature(s) => self.signature(s),
            Value::Array(elem, items) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                self.align(alignment(elem.as_bytes()[0]));
                let start = self.buf.len();
                for item in items {
                    self.value(item);
                }
                let len = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.align(8);
                for f in fields {
                    self.value(f);
                }
            }
            Value::Variant(inner) => {
                self.signature(&inner.signature());
                self.value(inner);
            }
        }
    }

    fn u64(&mut self, n: u64) {
        self.align(8);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big: bool,
}

impl Reader<'_> {
    fn align(&mut self, n: usize) -> Result<(), DbusError> {
        self.pos = self.pos.next_multiple_of(n);
        if self.pos > self.buf.len() {
            return Err(protocol("message truncated"));
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DbusError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| protocol("message truncated"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], DbusError> {
        self.align(N)?;
        let mut b: [u8; N] = self.take(N)?.try_into().expect("took N bytes");
        if self.big {
            b.reverse();
        }
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, DbusError> {
        Ok(u32::from_le_bytes(self.fixed()?))
    }

    fn u64(&mut self) -> Result<u64, DbusError> {
        Ok(u64::from_le_bytes(self.fixed()?))
    }

    fn text(&mut self, len: usize) -> Result<String, DbusError> {
        let bytes = self.take(len + 1)?;
        String::from_utf8(bytes[..len].to_vec()).map_err(|_| protocol("string is not UTF-8"))
    }

    /// Decode one value of the single complete type `sig`.
    fn value(&mut self, sig: &[u8]) -> Result<Value, DbusError> {
        Ok(match sig[0] {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => Value::Bool(self.u32()? != 0),
            b'n' => Value::I32(i16::from_le_bytes(self.fixed()?).into()),
            b'q' => Value::U32(u16::from_le_bytes(self.fixed()?).into()),
            b'i' => Value::I32(self.u32()? as i32),
            b'u' | b'h' => Value::U32(self.u32()?),
            b'x' => Value::I64(self.u64()? as i64),
            b't' => Value::U64(self.u64()?),
            b'd' => Value::Double(f64::from_bits(self.u64()?)),
            b's' | b'o' => {
                let len = self.u32()? as usize;
                let t = self.text(len)?;
                if sig[0] == b's' {
                    Value::Str(t)
                } else {
                    Value::ObjectPath(t)
                }
            }
            b'g' => {
                let len = self.take(1)?[0] as usize;
                Value::Signature(self.text(len)?)
            }
            b'v' => {
                let len = self.take(1)?[0] as usize;
                let inner = self.text(len)?;
                let (one, rest) = split_type(inner.as_bytes())?;
                if !rest.is_empty() {
                    return Err(protocol("variant signature holds more than one type"));
                }
                Value::Variant(Box::new(self.value(one)?))
            }
            b'a' => {
                let len = self.u32()? as usize;
                let elem = &sig[1..];
                self.align(alignment(elem[0]))?;
                let end = self.pos + len;
                let mut items = Vec::new();
                while self.pos < end {
                    let before = self.pos;
                    items.push(self.value(elem)?);
                    if self.pos == before {
                        return Err(protocol("array of empty elements"));
                    }
                }
                if self.pos != end {
                    return Err(protocol("array elements overrun the array"));
                }
                let elem = String::from_utf8_lossy(elem).into_owned();
                Value::Array(elem, items)
            }
            b'(' | b'{' => {
                self.align(8)?;
                let mut inner = &sig[1..sig.len() - 1];
                let mut fields = Vec::new();
                while !inner.is_empty() {
                    let (one, rest) = split_type(inner)?;
                    fields.push(self.value(one)?);
                    inner = rest;
                }
                Value::Struct(fields)
            }
            other => {
                return Err(protocol(format!(
                    "unsupported type code {:?}",
                    other as char
                )))
            }
        })
    }
}

/// Where the system bus listens: `DBUS_SYSTEM_BUS_ADDRESS`, or the standard socket.
pub fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "unix:path=/run/dbus/system_bus_socket".into())
}

/// An authenticated connection to a bus.
pub struct Connection {
    sock: UnixStream,
    serial: u32,
    /// Messages read while waiting for something else.
    pending: Vec<Message>,
    /// Our unique name on the bus.
    pub name: String,
}

impl Connection {
    /// Connect to a `unix:path=...` or `unix:abstract=...` address (the first usable one of a
    /// `;`-separated list), authenticate as our uid and say Hello.
    pub fn open(address: &str) -> Result<Connection, DbusError> {
        let sock = connect(address)?;
        // Authentication reads before any wait_for sets a deadline.
        sock.set_read_timeout(Some(CALL_TIMEOUT))
            .map_err(io("socket timeout"))?;
        let mut conn = Connection {
            sock,
            serial: 0,
            pending: Vec::new(),
            name: String::new(),
        };
        conn.authenticate()?;
        let reply = conn.call(Message::method_call(
            BUS_NAME,
            "/org/freedesktop/DBus",
            BUS_NAME,
            "Hello",
        ))?;
        conn.name = reply
            .body
            .first()
            .and_then(Value::as_str)
            .ok_or_else(|| protocol("Hello returned no name"))?
            .to_string();
        Ok(conn)
    }

    fn authenticate(&mut self) -> Result<(), DbusError> {
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        self.sock
            .write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())
            .map_err(io("authentication"))?;
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            if line.len() > 512 {
                return Err(protocol("authentication answer too long"));
            }
            self.sock
                .read_exact(&mut byte)
                .map_err(io("authentication"))?;
            line.push(byte[0]);
        }
        if !line.starts_with(b"OK ") {
            return Err(protocol(format!(
                "the bus refused EXTERNAL authentication as uid {uid}: {}",
                String::from_utf8_lossy(&line).trim_end()
            )));
        }
        self.sock
            .write_all(b"BEGIN\r\n")
            .map_err(io("authentication"))
    }

    /// Send a message; returns its serial.
    pub fn send(&mut self, msg: &Message) -> Result<u32, DbusError> {
        self.serial += 1;
        let what = msg.member.as_deref().unwrap_or("reply").to_string();
        self.sock
            .write_all(&msg.encode(self.serial))
            .map_err(io(format!("send {what}")))?;
        Ok(self.serial)
    }

    fn read_message(&mut self) -> Result<Message, DbusError> {
        let mut head = [0u8; 16];
        self.sock.read_exact(&mut head).map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                DbusError::Timeout("a message".into())
            } else {
                io("read")(e)
            }
        })?;
        let num = |b: [u8; 4]| {
            if head[0] == b'B' {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let body_len = num(head[4..8].try_into().expect("4 bytes")) as usize;
        let fields_len = num(head[12..16].try_into().expect("4 bytes")) as usize;
        let total = (16 + fields_len).next_multiple_of(8) + body_len;
        if total > 128 << 20 {
            return Err(protocol("message larger than the 128 MiB D-Bus limit"));
        }
        let mut bytes = head.to_vec();
        bytes.resize(total, 0);
        self.sock.read_exact(&mut bytes[16..]).map_err(io("read"))?;
        Message::decode(&bytes)
    }

    /// Call a method and wait for its return; an error reply becomes [`DbusError::Remote`].
    /// Other messages that arrive meanwhile are kept for [`Connection::wait_for`].
    pub fn call(&mut self, msg: Message) -> Result<Message, DbusError> {
        let what = msg.member.clone().unwrap_or_default();
        let serial = self.send(&msg)?;
        let m = self.wait_for(&what, CALL_TIMEOUT, |m| m.reply_serial == Some(serial))?;
        match m.kind {
            Kind::Error => Err(remote_error(&m)),
            _ => Ok(m),
        }
    }

    /// Wait for the first message (kept aside or new) that `want` accepts, for at most
    /// `timeout`; the others stay kept.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        want: impl Fn(&Message) -> bool,
    ) -> Result<Message, DbusError> {
        if let Some(i) = self.pending.iter().position(&want) {
            return Ok(self.pending.remove(i));
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DbusError::Timeout(what.into()));
            }
            self.sock
                .set_read_timeout(Some(left))
                .map_err(io("socket timeout"))?;
            let m = self.read_message().map_err(|e| match e {
                DbusError::Timeout(_) => DbusError::Timeout(what.into()),
                e => e,
            })?;
            if want(&m) {
                return Ok(m);
            }
            self.pending.push(m);
        }
    }
}

/// How long a method call may wait for its reply.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The bus daemon's own name, path prefix and interface.
pub const BUS_NAME: &str = "org.freedesktop.DBus";

fn remote_error(m: &Message) -> DbusError {
    DbusError::Remote {
        name: m.error_name.clone().unwrap_or_default(),
        message: m
            .body
            .first()
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
    }
}

fn connect(address: &str) -> Result<UnixStream, DbusError> {
    let mut last = None;
    for entry in address.split(';') {
        let Some(params) = entry.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            let result = match kv.split_once('=') {
                Some(("path", p)) => UnixStream::connect(unescape(p)),
                Some(("abstract", name)) => connect_abstract(&unescape(name)),
                _ => continue,
            };
            match result {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(io(format!("connect to {entry}"))(e)),
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        protocol(format!(
            "no unix:path= or unix:abstract= in bus address {address:?}"
        ))
    }))
}

fn connect_abstract(name: &str) -> std::io::Result<UnixStream> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
    UnixStream::connect_addr(&addr)
}

/// Undo the `%xx` escapes of a bus address value.
fn unescape(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("");
            if let Ok(n) = u8::from_str_radix(hex, 16) {
                out.push(n);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_is_marshalled_as_the_spec_lays_it_out() {
        let m = Message::method_call(BUS_NAME, "/org/freedesktop/DBus", BUS_NAME, "Hello");
        let bytes = m.encode(1);
        // Fixed header: little-endian, method call, no flags, version 1, empty body, serial 1.
        assert_eq!(&bytes[..12], &[b'l', 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0]);
        // The first header field: code 1 (path), variant signature "o", then the path.
        assert_eq!(&bytes[16..20], &[1, 1, b'o', 0]);
        assert_eq!(&bytes[20..24], &21u32.to_le_bytes());
        assert_eq!(&bytes[24..45], b"/org/freedesktop/DBus");
        assert_eq!(bytes.len() % 8, 0, "no body: the header ends 8-aligned");
        assert_eq!(Message::decode(&bytes).unwrap(), Message { serial: 1, ..m });
    }

    #[test]
    fn nested_containers_round_trip_with_their_padding() {
        let props = Value::Array(
            "(sv)".into(),
            vec![
                Value::Struct(vec![s("Slice"), Value::Variant(Box::new(s("a.slice")))]),
                Value::Struct(vec![
                    s("PIDs"),
                    Value::Variant(Box::new(Value::Array("u".into(), vec![Value::U32(42)]))),
                ]),
                Value::Struct(vec![
                    s("MemoryMax"),
                    Value::Variant(Box::new(Value::U64(1 << 30))),
                ]),
                Value::Struct(vec![
                    s("AllowedCPUs"),
                    Value::Variant(Box::new(Value::Array("y".into(), vec![Value::Byte(3)]))),
                ]),
            ],
        );
        let aux = Value::Array("(sa(sv))".into(), vec![]);
        let m = Message::method_call("org.freedesktop.systemd1", "/p", "i.f", "M").with_body(vec![
            s("x.scope"),
            s("replace"),
            props,
            aux,
        ]);
        assert_eq!(m.signature(), "ssa(sv)a(sa(sv))");
        let bytes = m.encode(7);
        let back = Message::decode(&bytes).unwrap();
        assert_eq!(back.body, m.body);
        assert_eq!(back.serial, 7);
        // An empty array of structs still pads to the struct alignment after its length.
        let mut w = Writer::default();
        w.value(&Value::Byte(1));
        w.value(&Value::Array("(sv)".into(), vec![]));
        assert_eq!(w.buf, vec![1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn big_endian_messages_decode() {
        // A signal "u" body 0x01020304, written big-endian by hand.
        let mut m = vec![b'B', 4, 0, 1, 0, 0, 0, 4, 0, 0, 0, 9];
        let mut fields = Vec::new();
        fields.extend_from_slice(&[8, 1, b'g', 0, 1, b'u', 0]);
        m.extend_from_slice(&(fields.len() as u32).to_be_bytes());
        m.extend_from_slice(&fields);
        m.resize(m.len().next_multiple_of(8), 0);
        m.extend_from_slice(&[1, 2, 3, 4]);
        let d = Message::decode(&m).unwrap();
        assert_eq!(d.kind, Kind::Signal);
        assert_eq!(d.serial, 9);
        assert_eq!(d.body, vec![Value::U32(0x01020304)]);
    }

    #[test]
    fn bad_messages_are_errors_not_panics() {
        let good = Message::method_call("a.b", "/", "a.b", "C")
            .with_body(vec![s("hello")])
            .encode(1);
        for cut in 0..good.len() {
            assert!(Message::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(split_type(b"(su").is_err());
        assert!(split_type(b"a").is_err());
    }

    #[test]
    fn addresses_unescape() {
        assert_eq!(unescape("/run/a%20b"), "/run/a b");
        assert_eq!(unescape("/x%"), "/x%");
        assert_eq!(unescape("/x%4"), "/x%4");
    }
}
