//! The `tron-node-double` binary: prints and writes its address, produces blocks on its
//! timer, and answers over real HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn post(addr: &str, path: &str, body: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").expect("http response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).expect("json body")
}

#[test]
fn binary_serves_and_produces_blocks() {
    let dir = std::env::temp_dir().join(format!("node-double-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port_file = dir.join("addr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tron-node-double"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--block-interval-ms",
            "50",
            "--energy-fee",
            "210",
            "--port-file",
        ])
        .arg(&port_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().to_owned();
    assert_eq!(std::fs::read_to_string(&port_file).unwrap().trim(), addr);

    let first = post(&addr, "/wallet/getnowblock", "{}");
    let n0 = first["block_header"]["raw_data"]["number"]
        .as_i64()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let b = post(&addr, "/wallet/getnowblock", "{}");
        if b["block_header"]["raw_data"]["number"].as_i64().unwrap() >= n0 + 2 {
            break;
        }
        assert!(Instant::now() < deadline, "no new blocks");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The price flags reach getchainparameters.
    let params = post(&addr, "/wallet/getchainparameters", "{}");
    let energy_fee = params["chainParameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["key"] == "getEnergyFee")
        .map(|p| p["value"].clone());
    assert_eq!(energy_fee, Some(serde_json::json!(210)));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
