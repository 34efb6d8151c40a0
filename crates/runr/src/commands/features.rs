pub fn run() -> anyhow::Result<i32> {
    println!(
        "{}",
        serde_json::to_string_pretty(&container::features::document())?
    );
    Ok(0)
}
