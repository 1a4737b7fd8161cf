//! Platform DNS inside sandboxes: a resolver that knows only the platform's names — services' `run.app` hosts
//! (served by the gateway inside every sandbox at `127.0.0.1`), VPC hosts (`NAME.ZONE.c.PROJECT.internal` and
//! `NAME.c.PROJECT.internal`, at their subnet addresses) and `metadata.google.internal`. Everything else is NXDOMAIN:
//! no name is ever looked up off the machine.
//!
//! [`answer`] is pure (bytes in, bytes out, through hickory-proto's message codec); the daemon serves it on
//! `127.0.0.1:53` inside each sandbox.

use std::net::Ipv4Addr;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{rdata::A, DNSClass, RData, Record, RecordType};

/// Seconds a platform answer may be cached.
const TTL: u32 = 30;

/// Answers one DNS query. `lookup` maps a lowercase name without the trailing dot to its address. `None` for input
/// that is not a DNS query at all (dropped, as a resolver would).
pub fn answer(query: &[u8], lookup: impl Fn(&str) -> Option<Ipv4Addr>) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    if request.message_type() != MessageType::Query {
        return None;
    }
    let mut response = Message::new();
    response
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    response.add_queries(request.queries().to_vec());
    let code = match (request.op_code(), request.queries()) {
        (OpCode::Query, [q]) if q.query_class() == DNSClass::IN => {
            let name = q.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
            match lookup(&name) {
                // Known name: an A record, or no record of another type (NOERROR, so clients fall back to A).
                Some(ip) => {
                    if q.query_type() == RecordType::A {
                        response.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
                    }
                    ResponseCode::NoError
                }
                None => ResponseCode::NXDomain,
            }
        }
        (OpCode::Query, _) => ResponseCode::FormErr,
        _ => ResponseCode::NotImp,
    };
    response.set_response_code(code);
    response.to_vec().ok()
}

/// The names a VPC host answers to: `NAME.ZONE.c.PROJECT.internal` and `NAME.c.PROJECT.internal` (lowercase).
pub fn host_names(name: &str, zone: &str, project: &str) -> [String; 2] {
    let (name, zone, project) = (name.to_ascii_lowercase(), zone.to_ascii_lowercase(), project.to_ascii_lowercase());
    [format!("{name}.{zone}.c.{project}.internal"), format!("{name}.c.{project}.internal")]
}

/// The `search` line of a sandbox's `/etc/resolv.conf`, as on Compute Engine: short VM names resolve.
pub fn search_domains(zone: &str, project: &str) -> String {
    format!("{zone}.c.{project}.internal c.{project}.internal google.internal")
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::Name;
    use std::str::FromStr as _;

    fn ask(name: &str, kind: RecordType) -> Message {
        let mut q = Message::new();
        q.set_id(7).set_message_type(MessageType::Query).set_op_code(OpCode::Query).set_recursion_desired(true);
        q.add_query(Query::query(Name::from_str(name).unwrap(), kind));
        let lookup = |n: &str| match n {
            "db.us-central1-a.c.local-project.internal" => Some(Ipv4Addr::new(10, 20, 0, 50)),
            "hello-123.us-central1.run.app" => Some(Ipv4Addr::LOCALHOST),
            _ => None,
        };
        Message::from_vec(&answer(&q.to_vec().unwrap(), lookup).expect("an answer")).unwrap()
    }

    #[test]
    fn known_names_get_their_address_and_others_nxdomain() {
        let r = ask("DB.us-central1-a.c.local-project.internal.", RecordType::A);
        assert_eq!((r.id(), r.message_type(), r.response_code()), (7, MessageType::Response, ResponseCode::NoError));
        assert_eq!(r.answers().len(), 1);
        assert_eq!(r.answers()[0].data(), &RData::A(A(Ipv4Addr::new(10, 20, 0, 50))));
        assert_eq!(ask("hello-123.us-central1.run.app.", RecordType::A).answers().len(), 1);
        let aaaa = ask("hello-123.us-central1.run.app.", RecordType::AAAA);
        assert_eq!((aaaa.response_code(), aaaa.answers().len()), (ResponseCode::NoError, 0));
        let nx = ask("www.google.com.", RecordType::A);
        assert_eq!((nx.response_code(), nx.answers().len()), (ResponseCode::NXDomain, 0));
    }

    #[test]
    fn garbage_is_dropped_and_host_names_follow_compute_engine() {
        assert!(answer(b"\x00\x01garbage", |_| None).is_none());
        assert_eq!(
            host_names("DB", "us-central1-a", "local-project"),
            ["db.us-central1-a.c.local-project.internal", "db.c.local-project.internal"]
        );
        assert_eq!(search_domains("us-central1-a", "p"), "us-central1-a.c.p.internal c.p.internal google.internal");
    }
}
