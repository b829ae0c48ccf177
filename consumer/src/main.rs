use consumer::startup::Consumer;
use voting::configuration::get_configuration;
use voting::telemetry::init_service_telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = get_configuration()?;
    // Before anything connects: a Secret never filled in fails here, in one line naming it.
    settings.check_consumer_secrets()?;
    let _logs = init_service_telemetry("paredao-consumer", &settings.telemetry);
    let consumer = Consumer::build(settings).await?;
    consumer.run_until_stopped(voting::shutdown::signal()).await
}
