//! Just enough XML for CloudFront's rest-xml: a bounded parse into a small tree that is then read
//! order-independently (boto3 sends elements in the order of the caller's dict), and escaping for the
//! responses written by hand.

use quick_xml::Reader;
use quick_xml::events::Event;

/// An element: its local name (namespaces are ignored, as botocore does), text and children.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

const MAX_DEPTH: usize = 16;
const MAX_NODES: usize = 10_000;

impl Node {
    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child called `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn trimmed(&self) -> &str {
        self.text.trim()
    }
}

/// Parses a document into its root element. Errors are short messages for an `InvalidArgument`.
pub fn parse(text: &str) -> Result<Node, String> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    let mut nodes = 0usize;
    loop {
        let event =
            reader.read_event().map_err(|e| format!("malformed XML at byte {}: {e}", reader.buffer_position()))?;
        if root.is_some() && matches!(event, Event::Start(_) | Event::Empty(_)) {
            return Err("malformed XML: content after the root element".into());
        }
        match event {
            Event::Start(e) => {
                nodes += 1;
                if stack.len() >= MAX_DEPTH || nodes > MAX_NODES {
                    return Err("XML document too deep or too large".into());
                }
                stack.push(Node { name: local(e.local_name().as_ref()), ..Node::default() });
            }
            Event::Empty(e) => {
                nodes += 1;
                let node = Node { name: local(e.local_name().as_ref()), ..Node::default() };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("malformed XML: unexpected end tag")?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                } else if !t.xml10_content().trim().is_empty() {
                    return Err("malformed XML: text outside the root element".into());
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&c.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let c = if r.is_char_ref() {
                    r.resolve_char_ref().ok().flatten().ok_or("malformed XML: bad character reference")?
                } else {
                    match &*r {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        other => return Err(format!("malformed XML: unknown entity &{other};")),
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push(c);
                }
            }
            Event::DocType(_) => return Err("DOCTYPE is not allowed".into()),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err("malformed XML: the document ends inside an element".into());
    }
    root.ok_or_else(|| "malformed XML: no root element".into())
}

fn local(name: &str) -> String {
    name.to_string()
}

/// Text escaped for an XML element body.
pub(crate) fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_elements_with_namespaces_and_entities() {
        let n = parse(r#"<?xml version="1.0"?><a xmlns="urn:x"><b>1 &amp; 2</b><c/><b>&#65;</b></a>"#).unwrap();
        assert_eq!(n.name, "a");
        assert_eq!(n.all("b").map(|b| b.text.as_str()).collect::<Vec<_>>(), ["1 & 2", "A"]);
        assert!(n.child("c").is_some());
    }

    #[test]
    fn rejects_broken_and_hostile_documents() {
        for bad in
            ["", "<a>", "<a></b>", "<a/><b/>", "text", "<!DOCTYPE x [<!ENTITY e 'x'>]><a>&e;</a>", "<a>&bogus;</a>"]
        {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(parse(&deep).is_err());
    }
}
