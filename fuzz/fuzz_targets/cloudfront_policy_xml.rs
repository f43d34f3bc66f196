//! Fuzz target `cloudfront_policy_xml`: CloudFront's rest-xml `ContinuousDeploymentPolicyConfig` body
//! (`edgesplit::admin::cloudfront::parse_config`) and the XML reader under it (`edgesplit::admin::xml::parse`).
//!
//! Invariants, checked on every input:
//! 1. `xml::parse` and `parse_config` never panic: a document is `Ok` or a clean error.
//! 2. `parse_config`'s errors are what the API answers for a bad body: 400 with `InvalidArgument`,
//!    `InconsistentQuantities` or `MissingBody`, and a non-empty message.
//! 3. An accepted config passes `PolicyConfig::validate`, and written back with the response serialiser
//!    (`config_xml`, with and without the namespace) it parses to the same config.
//! 4. A document `xml::parse` refuses is refused by `parse_config` too.
//!
//! Input: the request body bytes.
#![no_main]

use edgesplit::admin::cloudfront::{config_xml, parse_config};
use edgesplit::admin::xml;
use http::StatusCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tree = std::str::from_utf8(data).ok().map(xml::parse);
    match parse_config(data) {
        Ok(config) => {
            assert!(matches!(tree, Some(Ok(_))), "parse_config accepted what xml::parse refused");
            assert_eq!(config.validate(), Ok(()), "{config:?}");
            for root in [true, false] {
                let written = config_xml(&config, root);
                match parse_config(written.as_bytes()) {
                    Ok(again) => assert_eq!(again, config, "round trip through {written}"),
                    Err(e) => panic!("{written} does not parse back: {e:?}"),
                }
            }
        }
        Err(e) => {
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{e:?}");
            assert!(matches!(e.code.name(), "InvalidArgument" | "InconsistentQuantities" | "MissingBody"), "{e:?}");
            assert!(!e.message.is_empty(), "{e:?}");
        }
    }
});
