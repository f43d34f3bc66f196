//! CloudFront's policy API from tests: unsigned calls (the tests' admin runs `auth = "none"`), policy
//! bodies, and reading the answers.

use std::net::SocketAddr;

use http::Request;

use super::{full, http1_client, send};

/// The policies' path.
pub const CF: &str = "/2020-05-31/continuous-deployment-policy";

/// One admin call: status, headers, body text. Bounded.
pub async fn api(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(format!("http://{admin}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(full(body.to_string())).unwrap();
    let (status, headers, body) = send(&http1_client(), req).await;
    (status.as_u16(), headers, body)
}

pub fn weight_policy(staging_name: &str, weight: f64, enabled: bool) -> String {
    format!(
        "<ContinuousDeploymentPolicyConfig xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">\
         <StagingDistributionDnsNames><Quantity>1</Quantity><Items><DnsName>{staging_name}</DnsName></Items></StagingDistributionDnsNames>\
         <Enabled>{enabled}</Enabled><TrafficConfig><Type>SingleWeight</Type><SingleWeightConfig><Weight>{weight}</Weight>\
         </SingleWeightConfig></TrafficConfig></ContinuousDeploymentPolicyConfig>"
    )
}

/// Requests with `aws-cf-cd-test: {value}` go to staging.
pub fn header_policy(staging_name: &str, value: &str) -> String {
    format!(
        "<ContinuousDeploymentPolicyConfig xmlns=\"http://cloudfront.amazonaws.com/doc/2020-05-31/\">\
         <StagingDistributionDnsNames><Quantity>1</Quantity><Items><DnsName>{staging_name}</DnsName></Items></StagingDistributionDnsNames>\
         <Enabled>true</Enabled><TrafficConfig><Type>SingleHeader</Type><SingleHeaderConfig><Header>aws-cf-cd-test</Header>\
         <Value>{value}</Value></SingleHeaderConfig></TrafficConfig></ContinuousDeploymentPolicyConfig>"
    )
}

/// The text of the first `<name>` element.
pub fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<{name}>");
    let start = xml.find(&open).unwrap_or_else(|| panic!("no <{name}> in {xml}")) + open.len();
    &xml[start..start + xml[start..].find(&format!("</{name}>")).unwrap()]
}

/// Creates a policy: (id, ETag).
pub async fn create_policy(admin: SocketAddr, xml: &str) -> (String, String) {
    let (status, h, body) = api(admin, "POST", CF, xml, &[]).await;
    assert_eq!(status, 201, "{body}");
    (element(&body, "Id").to_string(), h["etag"].to_str().unwrap().to_string())
}

/// Replaces a policy: the new ETag.
pub async fn update_policy(admin: SocketAddr, id: &str, etag: &str, xml: &str) -> String {
    let (status, h, body) = api(admin, "PUT", &format!("{CF}/{id}"), xml, &[("if-match", etag)]).await;
    assert_eq!(status, 200, "{body}");
    h["etag"].to_str().unwrap().to_string()
}
