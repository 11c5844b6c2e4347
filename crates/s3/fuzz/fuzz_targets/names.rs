//! Fuzzes the pure parsers every S3 request goes through (keys, bucket names, upload
//! ids, part names, continuation tokens, `encoding-type=url`, ranges) and checks the
//! properties the gateway relies on: an accepted key never walks out of its
//! directory, and what is encoded decodes back.
#![no_main]

use keel_s3::names::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s = s.as_ref();
    if let Ok(k) = parse_key(s) {
        assert!(s.len() <= MAX_KEY_LEN);
        assert!(!k.path.is_empty() && !k.path.contains('\0') && !k.path.starts_with('/'));
        assert_eq!(k.path.len() + usize::from(k.dir_marker), s.len());
        for (i, seg) in k.path.split('/').enumerate() {
            assert!(!seg.is_empty() && seg != "." && seg != ".." && seg.len() <= MAX_SEGMENT_LEN);
            assert!(i > 0 || seg != UPLOADS_DIR);
        }
        let (dir, name) = k.split();
        assert!(!name.is_empty() && !name.contains('/'));
        assert!(dir.is_empty() || k.path.starts_with(dir));
    }
    if is_bucket_name(s) {
        assert!(s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    }
    if s.len() <= MAX_TOKEN_KEY_LEN {
        assert_eq!(decode_token(&encode_token(s)).as_deref(), Ok(s));
    }
    let _ = decode_token(s);
    let e = url_encode(s);
    assert!(e.is_ascii());
    if is_upload_id(s) {
        assert!(s.len() == 32 && !s.contains('/') && !s.contains('.'));
    }
    if let Some(n) = parse_part_name(s) {
        assert_eq!(part_name(n), s);
    }
    let max = clamp_max(data.first().map(|b| i32::from(*b as i8) * 9));
    assert!(max <= 1000);
});
