//! The webhook's way in, as Messenger (or anyone) can reach it: the `X-Hub-Signature-256`
//! check over arbitrary bytes and headers, then the envelope parser over whatever JSON they
//! hold. Nothing may panic; a body signed with the app secret must verify, and a changed one
//! must not.
#![no_main]

use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-app-secret";

fuzz_target!(|data: &[u8]| {
    // The first line plays the signature header, the rest the raw body.
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&[][..], data),
    };
    let header = std::str::from_utf8(header).ok();
    let _ = herald::messenger::verify_signature(SECRET, body, header);

    let signed = herald::messenger::sign(SECRET, body);
    assert!(herald::messenger::verify_signature(SECRET, body, Some(&signed)));
    let mut changed = body.to_vec();
    changed.push(b' ');
    assert!(!herald::messenger::verify_signature(SECRET, &changed, Some(&signed)));

    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
        let _ = herald::messenger::parse_envelope(&value, chrono::DateTime::UNIX_EPOCH);
    }
});
