use consumer::startup::Consumer;
use voting::configuration::get_configuration;
use voting::telemetry::init_service_telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = get_configuration()?;
    let _logs = init_service_telemetry("paredao-consumer", &settings.telemetry);
    let consumer = Consumer::build(settings).await?;
    consumer.run_until_stopped(voting::shutdown::signal()).await
}
