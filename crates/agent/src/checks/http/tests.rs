//! HTTP probe tests against local servers.

use super::*;
use crate::checks::testsupport::{
    closed_tcp_port, http_server, https_http1_server, https_server, silent_server, within,
};
use catalog::Status;

fn get(url: String) -> HttpProbe {
    HttpProbe {
        url,
        ..HttpProbe::default()
    }
}

async fn run(p: &HttpProbe) -> Outcome {
    within(check(p, Duration::from_secs(10), 4096)).await
}

#[tokio::test]
async fn status_codes_map_to_statuses() {
    let addr = http_server().await;
    let ok = format!("http://{addr}/ok");
    assert_eq!(
        run(&get(ok.clone())).await,
        Outcome::passing(format!("HTTP GET {ok}: 200 OK Output: healthy"))
    );
    let busy = format!("http://{addr}/busy");
    assert_eq!(
        run(&get(busy.clone())).await,
        Outcome::warning(format!(
            "HTTP GET {busy}: 429 Too Many Requests Output: slow down"
        ))
    );
    let fail = format!("http://{addr}/fail");
    assert_eq!(
        run(&get(fail.clone())).await,
        Outcome::critical(format!(
            "HTTP GET {fail}: 500 Internal Server Error Output: broken"
        ))
    );
    let missing = format!("http://{addr}/missing");
    assert_eq!(run(&get(missing)).await.status, Status::Critical);
}

#[tokio::test]
async fn servers_reason_phrase_is_shown() {
    let addr = http_server().await;
    let url = format!("http://{addr}/reason");
    assert_eq!(
        run(&get(url.clone())).await,
        Outcome::passing(format!("HTTP GET {url}: 200 Fine Indeed Output: "))
    );
}

#[tokio::test]
async fn default_and_custom_headers_are_sent() {
    let addr = http_server().await;
    let url = format!("http://{addr}/echo");
    let out = run(&HttpProbe {
        headers: vec![("X-Test".into(), "a".into()), ("x-test".into(), "b".into())],
        ..get(url.clone())
    })
    .await;
    assert_eq!(
        out,
        Outcome::passing(format!(
            "HTTP GET {url}: 200 OK Output: method=GET version=HTTP/1.1 host={addr} \
             ua=Consul Health Check accept=text/plain, text/*, */* x-test=a,b auth= length= body="
        ))
    );

    let out = run(&HttpProbe {
        headers: vec![
            ("User-Agent".into(), "probe/1".into()),
            ("Accept".into(), "application/json".into()),
            ("Host".into(), "service.example".into()),
        ],
        ..get(url.clone())
    })
    .await;
    assert!(
        out.output
            .contains("host=service.example ua=probe/1 accept=application/json "),
        "{}",
        out.output
    );
}

#[tokio::test]
async fn method_and_body_are_sent() {
    let addr = http_server().await;
    let url = format!("http://{addr}/echo");
    let out = run(&HttpProbe {
        method: "POST".into(),
        body: "hello".into(),
        ..get(url.clone())
    })
    .await;
    assert_eq!(out.status, Status::Passing);
    assert!(
        out.output
            .starts_with(&format!("HTTP POST {url}: 200 OK Output: method=POST ")),
        "{}",
        out.output
    );
    assert!(
        out.output.ends_with("length=5 body=hello"),
        "{}",
        out.output
    );
}

#[tokio::test]
async fn body_keeps_the_last_output_max_bytes() {
    let addr = http_server().await;
    let url = format!("http://{addr}/big");
    let out = within(check(&get(url.clone()), Duration::from_secs(10), 10)).await;
    assert_eq!(
        out,
        Outcome::passing(format!("HTTP GET {url}: 200 OK Output: aaaaaaTAIL"))
    );
}

#[tokio::test]
async fn redirects_are_followed() {
    let addr = http_server().await;
    let url = format!("http://{addr}/redirect");
    assert_eq!(
        run(&get(url.clone())).await,
        Outcome::passing(format!("HTTP GET {url}: 200 OK Output: healthy"))
    );
    let url = format!("http://{addr}/redirect-fail");
    assert_eq!(
        run(&get(url.clone())).await,
        Outcome::critical(format!(
            "HTTP GET {url}: 500 Internal Server Error Output: broken"
        ))
    );
}

#[tokio::test]
async fn redirects_can_be_disabled() {
    let addr = http_server().await;
    let url = format!("http://{addr}/redirect");
    let out = run(&HttpProbe {
        disable_redirects: true,
        ..get(url.clone())
    })
    .await;
    assert_eq!(
        out,
        Outcome::critical(format!("HTTP GET {url}: 302 Found Output: "))
    );
}

#[tokio::test]
async fn redirect_loops_stop_after_ten() {
    let addr = http_server().await;
    let out = run(&get(format!("http://{addr}/loop"))).await;
    assert_eq!(
        out,
        Outcome::critical("Get \"/loop\": stopped after 10 redirects")
    );
}

#[tokio::test]
async fn redirect_methods_follow_go() {
    let addr = http_server().await;
    let post = |path: &str| HttpProbe {
        method: "POST".into(),
        body: "hello".into(),
        ..get(format!("http://{addr}{path}"))
    };
    // 303 turns the request into a GET without a body.
    let out = run(&post("/see-other")).await;
    assert!(out.output.contains("method=GET "), "{}", out.output);
    assert!(out.output.ends_with("body="), "{}", out.output);
    // 307 repeats it as is.
    let out = run(&post("/temporary")).await;
    assert!(out.output.contains("method=POST "), "{}", out.output);
    assert!(
        out.output.ends_with("length=5 body=hello"),
        "{}",
        out.output
    );
}

#[tokio::test]
async fn credentials_are_dropped_on_cross_host_redirects() {
    let addr = http_server().await;
    let with_auth = |target: String| HttpProbe {
        headers: vec![("Authorization".into(), "Bearer secret".into())],
        ..get(format!("http://{addr}/redirect-to?{target}"))
    };
    let out = run(&with_auth("/echo".into())).await;
    assert!(out.output.contains("auth=Bearer secret "), "{}", out.output);
    // 127.0.0.2 is another host.
    let other = crate::checks::testsupport::http_server_on("127.0.0.2").await;
    let out = run(&with_auth(format!("http://{other}/echo"))).await;
    assert_eq!(out.status, Status::Passing, "{}", out.output);
    assert!(out.output.contains("auth= "), "{}", out.output);
}

#[tokio::test]
async fn refused_connection_is_critical() {
    let addr = closed_tcp_port().await;
    let url = format!("http://{addr}/ok");
    assert_eq!(
        run(&get(url.clone())).await,
        Outcome::critical(format!(
            "Get \"{url}\": dial tcp {addr}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn timeout_is_critical() {
    let addr = silent_server().await;
    let url = format!("http://{addr}/");
    let out = within(check(&get(url.clone()), Duration::from_millis(300), 4096)).await;
    assert_eq!(
        out,
        Outcome::critical(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ))
    );
}

#[tokio::test]
async fn bad_requests_are_critical() {
    assert_eq!(
        run(&get("not a url".into())).await,
        Outcome::critical("parse \"not a url\": relative URL without a base")
    );
    assert_eq!(
        run(&get("ftp://127.0.0.1/".into())).await,
        Outcome::critical("Get \"ftp://127.0.0.1/\": unsupported protocol scheme \"ftp\"")
    );
    assert_eq!(
        run(&HttpProbe {
            method: "G ET".into(),
            ..get("http://127.0.0.1/".into())
        })
        .await,
        Outcome::critical("net/http: invalid method \"G ET\"")
    );
    let addr = http_server().await;
    let out = run(&HttpProbe {
        method: "purge".into(),
        headers: vec![("bad header".into(), "x".into())],
        ..get(format!("http://{addr}/ok"))
    })
    .await;
    assert_eq!(
        out,
        Outcome::critical(format!(
            "purge \"http://{addr}/ok\": net/http: invalid header field name \"bad header\""
        ))
    );
}

#[tokio::test]
async fn https_with_skip_verify_uses_h2_when_offered() {
    let addr = https_server().await;
    let url = format!("https://{addr}/echo");
    let out = run(&HttpProbe {
        tls_skip_verify: true,
        ..get(url.clone())
    })
    .await;
    assert_eq!(out.status, Status::Passing, "{}", out.output);
    assert!(
        out.output.starts_with(&format!(
            "HTTP GET {url}: 200 OK Output: method=GET version=HTTP/2.0 host={addr} ua=Consul Health Check"
        )),
        "{}",
        out.output
    );

    let addr = https_http1_server().await;
    let url = format!("https://{addr}/busy");
    let out = run(&HttpProbe {
        tls_skip_verify: true,
        tls_server_name: "localhost".into(),
        ..get(url.clone())
    })
    .await;
    assert_eq!(
        out,
        Outcome::warning(format!(
            "HTTP GET {url}: 429 Too Many Requests Output: slow down"
        ))
    );
}

#[tokio::test]
async fn https_with_untrusted_certificate_is_critical() {
    let addr = https_server().await;
    let url = format!("https://{addr}/ok");
    let out = run(&get(url.clone())).await;
    assert_eq!(out.status, Status::Critical);
    assert!(
        out.output
            .starts_with(&format!("Get \"{url}\": tls: invalid peer certificate")),
        "{}",
        out.output
    );
}
