use super::*;

fn chain(n: u64) -> Vec<AuditEntry> {
    let mut head = AuditHead::default();
    (1..=n)
        .map(|seq| {
            let mut e = AuditEntry {
                detail: Some(format!("entry {seq}")),
                ..AuditEntry::default()
            };
            e.seal(seq, &head.hash).expect("seal");
            head = AuditHead::at(seq, e.hash.clone());
            e
        })
        .collect()
}

fn walk(entries: Vec<AuditEntry>) -> Verification {
    verify_chain(
        AuditHead::default(),
        entries
            .into_iter()
            .map(|e| Ok::<_, ()>(ChainItem::Entry(e))),
    )
    .expect("walk")
}

#[test]
fn a_read_error_is_an_error_not_tampering() {
    let items = vec![Ok(ChainItem::Entry(chain(1).remove(0))), Err("disk")];
    assert_eq!(verify_chain(AuditHead::default(), items), Err("disk"));
}

#[test]
fn undecodable_bytes_break_the_chain_where_they_stand() {
    let mut items: Vec<Result<ChainItem, ()>> = chain(2)
        .into_iter()
        .map(|e| Ok(ChainItem::Entry(e)))
        .collect();
    items.push(Ok(ChainItem::Undecodable { seq: 3 }));
    let v = verify_chain(AuditHead::default(), items).expect("walk");
    assert_eq!((v.ok, v.first_bad_seq, v.entries), (false, Some(3), 2));
}

#[test]
fn a_sealed_entry_is_stored_as_serde_encodes_it() {
    let mut e = AuditEntry {
        message_id: Some("msg_1".into()),
        detail: Some("quote \" and \\ and é".into()),
        ..AuditEntry::default()
    };
    let stored = e.seal(7, GENESIS).expect("seal");
    assert_eq!(stored, serde_json::to_vec(&e).expect("json"));
    assert_eq!(e.hash, e.computed_hash().expect("hash"));
    let back: AuditEntry = serde_json::from_slice(&stored).expect("decode");
    assert_eq!(back, e);
}

#[test]
fn an_intact_chain_verifies() {
    let v = walk(chain(5));
    assert!(v.ok);
    assert_eq!(v.entries, 5);
}

#[test]
fn a_changed_entry_is_named() {
    let mut entries = chain(5);
    entries[2].detail = Some("rewritten".into());
    let v = walk(entries);
    assert_eq!((v.ok, v.first_bad_seq), (false, Some(3)));
}

#[test]
fn a_pruned_chain_verifies_from_where_it_now_starts() {
    let entries = chain(5);
    let start = AuditHead::at(2, entries[1].hash.clone());
    let kept = entries
        .into_iter()
        .skip(2)
        .map(|e| Ok::<_, ()>(ChainItem::Entry(e)));
    let v = verify_chain(start, kept).expect("walk");
    assert_eq!((v.ok, v.first_seq, v.entries, v.head_seq), (true, 3, 3, 5));
}

#[test]
fn a_checkpoint_that_the_log_no_longer_extends_fails_the_verification() {
    let entries = chain(5);
    let mut v = walk(entries.clone());
    let point = ChainPoint {
        seq: 3,
        hash: entries[2].hash.clone(),
        chains: Vec::new(),
    };
    v.against(&point, Some(&entries[2].hash));
    assert!(v.ok);
    let mut v = walk(entries.clone());
    v.against(&point, Some("another hash"));
    assert_eq!((v.ok, v.first_bad_seq), (false, Some(3)));
}

#[test]
fn personal_values_leave_the_entry_before_it_is_sealed() {
    let pseudonyms = Pseudonyms::new(b"a key of the gateway's");
    let mut e = AuditEntry {
        personal: Some(Personal::of("4242")),
        ..AuditEntry::default()
    };
    let personal = e
        .take_personal(&pseudonyms, "salt".into())
        .expect("encode")
        .expect("personal");
    let stored = String::from_utf8(e.seal(1, GENESIS).expect("seal")).expect("utf8");
    assert!(!stored.contains("4242"), "{stored}");
    assert_eq!(e.recipient_pseudonym, Some(pseudonyms.of("4242")));
    assert_eq!(e.personal_sha256, Some(personal.sha256().expect("sha")));
    assert_ne!(
        pseudonyms.of("4242"),
        Pseudonyms::new(b"another key").of("4242")
    );
}

#[test]
fn a_pseudonym_is_sixteen_bytes_and_only_a_pseudonym_is() {
    let pseudonym = Pseudonyms::new(b"a key of the gateway's").of("4242");
    let bytes = Pseudonyms::bytes(&pseudonym).expect("a pseudonym's bytes");
    assert_eq!(format!("psn_{}", hex::encode(bytes)), pseudonym);
    for not_one in [
        "",
        "4242",
        &pseudonym[4..],
        &pseudonym[..35],
        &format!("{pseudonym}00"),
        "psn_zz000000000000000000000000000000",
    ] {
        assert_eq!(Pseudonyms::bytes(not_one), None, "{not_one:?}");
    }
}

#[test]
fn a_removed_entry_is_named() {
    let mut entries = chain(5);
    entries.remove(1);
    let v = walk(entries);
    assert_eq!((v.ok, v.first_bad_seq), (false, Some(2)));
}

#[test]
fn a_sealed_entry_is_checked_as_stored_and_any_changed_byte_breaks_it() {
    let mut e = AuditEntry {
        detail: Some("quote \" and é".into()),
        ..AuditEntry::default()
    };
    let stored = e.seal(1, GENESIS).expect("seal");
    assert_eq!(
        sealed_hash(GENESIS, &stored).as_deref(),
        Some(e.hash.as_str())
    );
    assert_eq!(
        sealed_hash(&e.hash, &stored),
        None,
        "linked to another entry"
    );
    for i in [0, stored.len() / 2, stored.len() - 3] {
        let mut flipped = stored.clone();
        flipped[i] ^= 1;
        assert_eq!(sealed_hash(GENESIS, &flipped), None, "byte {i} changed");
    }
    assert_eq!(sealed_hash(GENESIS, b"{}"), None);
}
