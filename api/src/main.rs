use api::startup::Application;
use voting::configuration::get_configuration;
use voting::telemetry::init_service_telemetry;

/// `api` serves; `api admin create NAME …` makes a team account and exits (see `accounts::cli`).
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let settings = get_configuration()?;
    if !args.is_empty() {
        return api::accounts::cli::run(settings, &args).await;
    }
    let _logs = init_service_telemetry("paredao-api", &settings.telemetry);
    let app = Application::build(settings).await?;
    app.run_until_stopped(voting::shutdown::signal()).await
}
