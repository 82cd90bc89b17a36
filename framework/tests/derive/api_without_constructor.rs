use kneedeep::prelude::*;

/// Neither `Default` nor `FromContext`: the framework cannot build it.
struct Api {
    _count: u32,
}

#[OpenApi]
impl Api {
    #[oai(path = "/x", method = "get")]
    async fn x(&self) -> PlainText<String> {
        PlainText(String::new())
    }
}

#[derive(Plugin)]
#[plugin(name = "unbuildable", api = Api)]
struct Unbuildable;

fn main() {}
