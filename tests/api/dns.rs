//! A DNS server on 127.0.0.1 for the tests: it answers TXT, A and AAAA questions with what tests
//! published, "no such name" for anything else, and SERVFAIL for names under `servfail.test`. One
//! server for the whole run, on a thread of its own (each test has its own runtime). Tests publish
//! unique values, so tests sharing a name cannot confuse each other.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::{Mutex, OnceLock};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};

static RECORDS: Mutex<Option<HashMap<String, Vec<String>>>> = Mutex::new(None);
static ADDRESSES: Mutex<Option<HashMap<String, Vec<IpAddr>>>> = Mutex::new(None);
static SERVER: OnceLock<SocketAddr> = OnceLock::new();

/// The server's address, started on first use.
pub fn server() -> SocketAddr {
    *SERVER.get_or_init(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the test DNS server");
        let addr = socket.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n]) {
                    let _ = socket.send_to(&reply, from);
                }
            }
        });
        addr
    })
}

/// Adds a TXT record at `name`.
pub fn publish(name: &str, text: &str) {
    let key = name.trim_end_matches('.').to_ascii_lowercase();
    RECORDS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_default()
        .push(text.to_string());
}

/// Makes `name` resolve to `addrs` (A and AAAA records), replacing what it resolved to before:
/// a test can rebind a name between two requests.
pub fn publish_address(name: &str, addrs: &[&str]) {
    let key = name.trim_end_matches('.').to_ascii_lowercase();
    let addrs = addrs
        .iter()
        .map(|a| a.parse().expect("an IP address"))
        .collect();
    ADDRESSES
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(key, addrs);
}

fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_bytes(query).ok()?;
    let question = request.queries().first()?.clone();
    let mut reply = Message::new();
    reply
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .add_query(question.clone());
    let name = question
        .name()
        .to_ascii()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let texts = RECORDS
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|r| r.get(&name).cloned());
    let addrs = ADDRESSES
        .lock()
        .unwrap()
        .as_ref()
        .and_then(|r| r.get(&name).cloned());
    if name.ends_with("servfail.test") {
        reply.set_response_code(ResponseCode::ServFail);
    } else if let Some(addrs) = addrs {
        for addr in addrs {
            let rdata = match (addr, question.query_type()) {
                (IpAddr::V4(a), RecordType::A) => RData::A(A(a)),
                (IpAddr::V6(a), RecordType::AAAA) => RData::AAAA(AAAA(a)),
                _ => continue,
            };
            reply.add_answer(Record::from_rdata(question.name().clone(), 0, rdata));
        }
    } else if let Some(texts) = texts {
        if question.query_type() == RecordType::TXT {
            for text in texts {
                reply.add_answer(Record::from_rdata(
                    question.name().clone(),
                    60,
                    RData::TXT(TXT::new(vec![text])),
                ));
            }
        }
    } else {
        reply.set_response_code(ResponseCode::NXDomain);
    }
    // RFC 1035 §4.2.1 and RFC 6891 §7: a UDP answer fits 512 bytes, or the size the client's EDNS
    // record offers; one that does not is sent truncated, as a real server would.
    let limit = request
        .extensions()
        .as_ref()
        .map_or(512, |edns| usize::from(edns.max_payload()).max(512));
    let bytes = reply.to_bytes().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    reply.take_answers();
    reply.set_truncated(true);
    reply.to_bytes().ok()
}
