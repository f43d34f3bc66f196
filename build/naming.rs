//! How a model's shape name becomes the name of its constant in `crate::limits`; shared by build.rs
//! (which writes the constants) and tests/limits.rs (which finds them again).

/// `TagKey` -> `TAG_KEY`, `S3BucketSafeName` -> `S3_BUCKET_SAFE_NAME`, `FunctionARN` -> `FUNCTION_ARN`.
pub fn constant_name(shape: &str) -> String {
    let chars: Vec<char> = shape.chars().collect();
    let mut out = String::new();
    for (i, c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}
