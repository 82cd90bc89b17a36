//! The merged OpenAPI document at `/openapi.json`: each plugin's document with its paths
//! under their full prefix, and its component names, operation ids and tags namespaced
//! as `<plugin>.<name>`, so that two plugins' `Item` or `list` never collide.

use serde_json::{Map, Value, json};

/// One plugin's document, rewritten once at startup so that merging is only copying.
#[derive(Debug, Clone)]
pub(crate) struct NamespacedSpec {
    paths: Map<String, Value>,
    components: Map<String, Value>,
    tags: Vec<Value>,
}

impl NamespacedSpec {
    /// Rewrites `spec` (a plugin's own document) for the plugin `plugin`, whose paths are
    /// relative to its first `servers` entry.
    pub(crate) fn new(plugin: &str, description: &str, spec: &Value) -> Self {
        let prefix = spec
            .pointer("/servers/0/url")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim_end_matches('/');

        let mut paths = Map::new();
        for (path, item) in spec
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let mut item = item.clone();
            rewrite(plugin, &mut item);
            paths.insert(format!("{prefix}{path}"), item);
        }

        let mut components = Map::new();
        for (kind, entries) in spec
            .get("components")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let Some(entries) = entries.as_object() else {
                continue;
            };
            let renamed: Map<String, Value> = entries
                .iter()
                .map(|(name, entry)| {
                    let mut entry = entry.clone();
                    rewrite(plugin, &mut entry);
                    (format!("{plugin}.{name}"), entry)
                })
                .collect();
            components.insert(kind.clone(), Value::Object(renamed));
        }

        let mut tags: Vec<Value> = spec
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|tag| {
                let mut tag = tag.clone();
                if let Some(name) = tag.get("name").and_then(Value::as_str) {
                    tag["name"] = Value::String(format!("{plugin}.{name}"));
                }
                tag
            })
            .collect();
        tags.push(json!({ "name": plugin, "description": description }));

        NamespacedSpec {
            paths,
            components,
            tags,
        }
    }
}

/// Operation keys of a path item, as OpenAPI 3 names them.
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Namespaces every `$ref` to a component, and in operations the `operationId` and tags.
fn rewrite(plugin: &str, value: &mut Value) {
    rewrite_refs(plugin, value);

    let Some(item) = value.as_object_mut() else {
        return;
    };
    for method in METHODS {
        let Some(operation) = item.get_mut(*method).and_then(Value::as_object_mut) else {
            continue;
        };
        if let Some(Value::String(id)) = operation.get_mut("operationId") {
            *id = format!("{plugin}.{id}");
        }
        let tags = operation
            .entry("tags")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(tags) = tags {
            for tag in tags.iter_mut() {
                if let Value::String(name) = tag {
                    *name = format!("{plugin}.{name}");
                }
            }
            if tags.is_empty() {
                tags.push(Value::String(plugin.to_owned()));
            }
        }
    }
}

fn rewrite_refs(plugin: &str, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match child {
                    Value::String(reference) if key == "$ref" => {
                        if let Some(renamed) = namespaced_ref(plugin, reference) {
                            *reference = renamed;
                        }
                    }
                    _ => rewrite_refs(plugin, child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| rewrite_refs(plugin, item)),
        _ => {}
    }
}

/// `#/components/schemas/Item` -> `#/components/schemas/notes.Item`.
fn namespaced_ref(plugin: &str, reference: &str) -> Option<String> {
    let rest = reference.strip_prefix("#/components/")?;
    let (kind, name) = rest.split_once('/')?;
    Some(format!("#/components/{kind}/{plugin}.{name}"))
}

/// Merges the given documents into one, titled `title`.
pub(crate) fn merge<'a>(
    title: &str,
    version: &str,
    specs: impl IntoIterator<Item = &'a NamespacedSpec>,
) -> Value {
    let mut paths = Map::new();
    let mut components: Map<String, Value> = Map::new();
    let mut tags = Vec::new();

    for spec in specs {
        paths.extend(spec.paths.clone());
        for (kind, entries) in &spec.components {
            let merged = components
                .entry(kind.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let (Value::Object(merged), Value::Object(entries)) = (merged, entries) {
                merged.extend(entries.clone());
            }
        }
        tags.extend(spec.tags.iter().cloned());
    }

    json!({
        "openapi": "3.0.0",
        "info": { "title": title, "version": version },
        "tags": tags,
        "paths": paths,
        "components": components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin_spec(server: &str) -> Value {
        json!({
            "openapi": "3.0.0",
            "servers": [{ "url": server }],
            "tags": [{ "name": "Items" }],
            "paths": {
                "/items": {
                    "get": {
                        "operationId": "list",
                        "tags": ["Items"],
                        "responses": { "200": { "content": { "application/json": {
                            "schema": { "type": "array", "items": { "$ref": "#/components/schemas/Item" } }
                        } } } }
                    }
                }
            },
            "components": { "schemas": {
                "Item": { "type": "object", "properties": { "tag": { "$ref": "#/components/schemas/Tag" } } },
                "Tag": { "type": "string" }
            } }
        })
    }

    #[test]
    fn paths_carry_the_full_prefix() {
        let spec = NamespacedSpec::new("notes", "", &plugin_spec("/plugins/notes/api"));
        assert_eq!(
            spec.paths.keys().collect::<Vec<_>>(),
            ["/plugins/notes/api/items"]
        );
    }

    #[test]
    fn two_plugins_with_the_same_schema_and_operation_do_not_collide() {
        let notes = NamespacedSpec::new("notes", "", &plugin_spec("/plugins/notes/api"));
        let files = NamespacedSpec::new("files", "", &plugin_spec("/plugins/files/api/"));
        let merged = merge("kneedeep", "0.1.0", [&notes, &files]);

        let schemas = merged["components"]["schemas"].as_object().unwrap();
        let mut names: Vec<_> = schemas.keys().cloned().collect();
        names.sort();
        assert_eq!(
            names,
            ["files.Item", "files.Tag", "notes.Item", "notes.Tag"]
        );

        let notes_list = &merged["paths"]["/plugins/notes/api/items"]["get"];
        let files_list = &merged["paths"]["/plugins/files/api/items"]["get"];
        assert_eq!(notes_list["operationId"], "notes.list");
        assert_eq!(files_list["operationId"], "files.list");
        assert_eq!(notes_list["tags"], json!(["notes.Items"]));
        assert_eq!(
            notes_list
                .pointer("/responses/200/content/application~1json/schema/items/$ref")
                .unwrap(),
            "#/components/schemas/notes.Item"
        );
        assert_eq!(
            schemas["files.Item"]
                .pointer("/properties/tag/$ref")
                .unwrap(),
            "#/components/schemas/files.Tag"
        );
    }

    #[test]
    fn an_operation_without_tags_is_grouped_under_its_plugin() {
        let mut spec = plugin_spec("/plugins/hello/api");
        spec["paths"]["/items"]["get"]
            .as_object_mut()
            .unwrap()
            .remove("tags");
        let spec = NamespacedSpec::new("hello", "Says hello.", &spec);

        assert_eq!(
            spec.paths["/plugins/hello/api/items"]["get"]["tags"],
            json!(["hello"])
        );
        assert!(
            spec.tags
                .contains(&json!({ "name": "hello", "description": "Says hello." }))
        );
    }
}
