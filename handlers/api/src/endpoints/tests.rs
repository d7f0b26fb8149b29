use super::*;

#[test]
fn cursors_round_trip_for_their_own_filter_only() {
    let cursor = encode_cursor(Some(CallStatus::Queued), "QUEUED#call_1");
    assert_eq!(
        decode_cursor(Some(CallStatus::Queued), &cursor).unwrap(),
        "QUEUED#call_1"
    );
    assert!(decode_cursor(None, &cursor).is_err());
    assert!(decode_cursor(None, "zz").is_err());
    assert!(decode_cursor(None, "abc").is_err());
    assert!(decode_cursor(None, &"00".repeat(300)).is_err());
}

#[test]
fn dnc_paths_take_e164_only() {
    assert_eq!(dnc_number("+12025550100").unwrap().as_str(), "+12025550100");
    assert!(dnc_number("2025550100").is_err());
    assert!(dnc_number("+1").is_err());
}
