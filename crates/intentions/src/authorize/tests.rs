use super::*;
use crate::write::IntentionWrite;

const WEB: &str = "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web";

fn request(json: &str) -> Result<AuthorizeRequest, AuthorizeError> {
    AuthorizeRequest::decode(json.as_bytes())
}

fn store() -> Intentions {
    let mut store = Intentions::new();
    let allow = IntentionWrite {
        action: "allow".into(),
        ..IntentionWrite::default()
    };
    store.upsert("web", "db", allow, 1).unwrap();
    store
}

#[test]
fn body_decoding() {
    let req = request(&format!(
        r#"{{"target":"db","clientcerturi":"{WEB}","ClientCertSerial":"04:a1","Unknown":1}}"#
    ))
    .unwrap();
    assert_eq!(req.target, "db");
    assert_eq!(req.client_cert_uri, WEB);
    assert_eq!(req.client_cert_serial, "04:a1");
    assert_eq!(
        request("").unwrap_err().to_string(),
        "Request decode failed: EOF"
    );
    assert!(request("{")
        .unwrap_err()
        .to_string()
        .starts_with("Request decode failed: "));
    assert!(request(r#"{"Target":5}"#).is_err());
}

#[test]
fn request_errors() {
    let check = |json: String, expected: &str| {
        let req = request(&json).unwrap();
        let err = store()
            .authorize_request(&req, DefaultPolicy::Acl { allow: true })
            .unwrap_err();
        assert_eq!(err.to_string(), expected, "{json}");
    };
    check(
        format!(r#"{{"ClientCertURI":"{WEB}"}}"#),
        "Target service must be specified",
    );
    check(
        r#"{"Target":"db","ClientCertURI":"not a uri"}"#.into(),
        "ClientCertURI not a valid Connect identifier",
    );
    check(
        r#"{"Target":"db"}"#.into(),
        "ClientCertURI not a valid Connect identifier",
    );
    check(
        r#"{"Target":"db","ClientCertURI":"spiffe://td.consul/agent/client/dc/dc1/id/n1"}"#.into(),
        "ClientCertURI not a valid Service identifier",
    );
    check(
        r#"{"Target":"db","ClientCertURI":"spiffe://td.consul/ap/eu/ns/default/dc/dc1/svc/web"}"#
            .into(),
        r#"Mismatched partitions: "eu" != "default""#,
    );
}

#[test]
fn decisions_and_response() {
    let store = store();
    let decide = |json: String, default| {
        let req = request(&json).unwrap();
        store.authorize_request(&req, default).unwrap()
    };
    let d = decide(
        format!(r#"{{"Target":"db","ClientCertURI":"{WEB}"}}"#),
        DefaultPolicy::Acl { allow: false },
    );
    let response = serde_json::to_value(AuthorizeResponse::from(&d)).unwrap();
    assert_eq!(
        response,
        serde_json::json!({
            "Authorized": true,
            "Reason": "Matched L4 intention: default/web => default/db (Precedence: 9, Action: ALLOW)"
        })
    );

    let d = decide(
        format!(r#"{{"Target":"cache","ClientCertURI":"{WEB}"}}"#),
        DefaultPolicy::Acl { allow: true },
    );
    assert_eq!(
        (d.allowed, d.reason.as_str()),
        (true, "Default behavior configured by ACLs")
    );

    // A client from another namespace is not the default namespace's `web`.
    let other = "spiffe://td.consul/ns/team/dc/dc1/svc/web";
    let d = decide(
        format!(r#"{{"Target":"db","ClientCertURI":"{other}"}}"#),
        DefaultPolicy::Intention { allow: false },
    );
    assert_eq!(
        (d.allowed, d.reason.as_str()),
        (false, "Default intention policy")
    );
}
