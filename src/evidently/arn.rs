//! Evidently's ARNs, built in this one place (D7: the configured account and region):
//! `arn:aws:evidently:{region}:{account}:project/{p}`, `…:project/{p}/feature/{f}`, `…/launch/{l}`,
//! `…/experiment/{x}` and `…:segment/{s}`.

use crate::domain::error::ResourceId;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Arns {
    /// `arn:aws:evidently:{region}:{account}`
    base: String,
}

impl Arns {
    pub fn new(region: &str, account_id: &str) -> Arns {
        Arns { base: format!("arn:aws:evidently:{region}:{account_id}") }
    }

    /// `arn:aws:evidently:{region}:{account}`, the prefix of every ARN here.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn project(&self, p: &str) -> String {
        format!("{}:project/{p}", self.base)
    }

    pub fn feature(&self, p: &str, f: &str) -> String {
        format!("{}:project/{p}/feature/{f}", self.base)
    }

    pub fn launch(&self, p: &str, l: &str) -> String {
        format!("{}:project/{p}/launch/{l}", self.base)
    }

    pub fn experiment(&self, p: &str, x: &str) -> String {
        format!("{}:project/{p}/experiment/{x}", self.base)
    }

    pub fn segment(&self, s: &str) -> String {
        format!("{}:segment/{s}", self.base)
    }

    /// The ARN of `id` (a policy's is its id: CloudFront names policies by id).
    pub fn of(&self, id: &ResourceId) -> String {
        match id {
            ResourceId::Policy(id) | ResourceId::Distribution(id) | ResourceId::Rollout(id) => id.clone(),
            ResourceId::Project(p) => self.project(p),
            ResourceId::Feature(p, f) => self.feature(p, f),
            ResourceId::Launch(p, l) => self.launch(p, l),
            ResourceId::Experiment(p, x) => self.experiment(p, x),
            ResourceId::Segment(s) => self.segment(s),
            ResourceId::Arn(_, arn) => arn.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_of_every_kind() {
        let a = Arns::new("eu-west-1", "123456789012");
        assert_eq!(a.of(&ResourceId::Project("p".into())), "arn:aws:evidently:eu-west-1:123456789012:project/p");
        assert_eq!(a.launch("p", "l"), "arn:aws:evidently:eu-west-1:123456789012:project/p/launch/l");
        assert_eq!(a.of(&ResourceId::Segment("s".into())), "arn:aws:evidently:eu-west-1:123456789012:segment/s");
    }
}
