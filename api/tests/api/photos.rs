//! Participants' photos: decoded, re-encoded and stored where nginx serves them, only while
//! the paredão is scheduled, within the size and type limits.

use std::io::Cursor;

use chrono::Duration;
use reqwest::Method;

use crate::helpers::{ADMIN_TOKEN, TestApp, settings_with_nothing_open, spawn_with};

fn png(width: u32, height: u32) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([(x % 256) as u8, (y % 256) as u8, 90]));
    let mut out = Cursor::new(Vec::new());
    picture.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn upload(
    app: &TestApp,
    paredao: &str,
    participant: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let r = app
        .client
        .put(app.url(&format!("/api/admin/paredoes/{paredao}/participants/{participant}/photo")))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn a_photo_is_reencoded_stored_and_named_on_the_participant() {
    let app = spawn_with(settings_with_nothing_open(), false).await;
    app.create_paredao("fotos", &["Ana", "Bia"], Duration::hours(1), Duration::hours(2), "live").await;
    let (status, paredao) = upload(&app, "fotos", "ana", "image/png", png(1000, 500)).await;
    assert_eq!(status, 200, "{paredao}");
    let url = paredao["participants"][0]["photo_url"].as_str().unwrap().to_string();
    assert!(url.starts_with("/fotos/fotos/ana-") && url.ends_with(".jpg"), "{url}");
    assert!(paredao["participants"][1].get("photo_url").is_none());

    // On disk under uploads.dir, as a JPEG of at most 600 px a side.
    let file = app.settings.uploads.dir.join(url.trim_start_matches("/fotos/"));
    let stored = std::fs::read(&file).unwrap();
    let picture = image::load_from_memory_with_format(&stored, image::ImageFormat::Jpeg).unwrap();
    assert_eq!((picture.width(), picture.height()), (600, 300));
    // Every replica's view of the paredão has it.
    let (_, public) = app.get_json("/api/paredoes/fotos").await;
    assert_eq!(public["participants"][0]["photo_url"], url);

    // Editing the participants keeps the photo of one that stays.
    let (status, edited) = app
        .admin(
            Method::PUT,
            "/api/admin/paredoes/fotos",
            Some(serde_json::json!({ "participants": [{ "id": "ana", "name": "Ana Clara" }, { "name": "Bia" }] })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(edited["participants"][0]["photo_url"], url);
}

#[tokio::test]
async fn photos_too_large_of_another_type_or_not_images_are_refused() {
    let app = spawn_with(settings_with_nothing_open(), false).await;
    app.create_paredao("limites", &["Ana", "Bia"], Duration::hours(1), Duration::hours(2), "live").await;

    let too_large = vec![0u8; app.settings.uploads.max_photo_bytes + 1];
    let (status, body) = upload(&app, "limites", "ana", "image/png", too_large).await;
    assert_eq!((status, body["error"].as_str()), (413, Some("photo_too_large")), "{body}");

    let (status, body) = upload(&app, "limites", "ana", "image/gif", b"GIF89a".to_vec()).await;
    assert_eq!((status, body["error"].as_str()), (415, Some("unsupported_image")), "{body}");
    let (status, body) = upload(&app, "limites", "ana", "text/plain", png(10, 10)).await;
    assert_eq!((status, body["error"].as_str()), (415, Some("unsupported_image")), "{body}");

    // A text file renamed .png: the browser sends it as image/png.
    let (status, body) = upload(&app, "limites", "ana", "image/png", b"hello, I am not a picture\n".to_vec()).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_image")), "{body}");
    // A real PNG sent as a JPEG is not a JPEG.
    let (status, body) = upload(&app, "limites", "ana", "image/jpeg", png(10, 10)).await;
    assert_eq!((status, body["error"].as_str()), (422, Some("invalid_image")), "{body}");

    let (status, _) = upload(&app, "limites", "nobody", "image/png", png(10, 10)).await;
    assert_eq!(status, 404);
    // Nothing was stored for any of them.
    let (_, paredao) = app.get_json("/api/paredoes/limites").await;
    assert!(paredao["participants"][0].get("photo_url").is_none());
}

#[tokio::test]
async fn photos_cannot_change_once_the_paredao_opens() {
    let app = spawn_with(settings_with_nothing_open(), false).await;
    app.create_paredao("aberto", &["Ana", "Bia"], Duration::hours(1), Duration::hours(2), "live").await;
    let (status, _) = app.admin(Method::POST, "/api/admin/paredoes/aberto/open", None).await;
    assert_eq!(status, 200);
    let (status, body) = upload(&app, "aberto", "ana", "image/png", png(10, 10)).await;
    assert_eq!((status, body["error"].as_str()), (409, Some("participants_locked")), "{body}");
}
