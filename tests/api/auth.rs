use std::time::{SystemTime, UNIX_EPOCH};

use herald::domain::Role;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, AUDIENCE, ISSUER, JWT_SECRET};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn forge(alg: Algorithm, secret: &str, claims: Value) -> String {
    encode(
        &Header::new(alg),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

fn claims(exp: u64, iss: &str, aud: &str) -> Value {
    json!({"sub": "mallory", "role": "admin", "exp": exp, "iss": iss, "aud": aud})
}

#[tokio::test]
async fn bad_tokens_get_401_with_a_problem_body() {
    let app = spawn_app().await;
    let later = now() + 600;
    let alg_none = {
        // {"alg":"none","typ":"JWT"} . claims . (no signature)
        let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
        let good = forge(
            Algorithm::HS256,
            JWT_SECRET,
            claims(later, ISSUER, AUDIENCE),
        );
        let body = good.split('.').nth(1).expect("claims part").to_owned();
        format!("{header}.{body}.")
    };
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("garbage", Some("not-a-jwt".into())),
        ("alg none", Some(alg_none)),
        (
            "HS512",
            Some(forge(
                Algorithm::HS512,
                JWT_SECRET,
                claims(later, ISSUER, AUDIENCE),
            )),
        ),
        (
            "wrong secret",
            Some(forge(
                Algorithm::HS256,
                "another-secret-0123456789",
                claims(later, ISSUER, AUDIENCE),
            )),
        ),
        (
            "expired",
            Some(forge(
                Algorithm::HS256,
                JWT_SECRET,
                claims(now() - 3600, ISSUER, AUDIENCE),
            )),
        ),
        (
            "no exp",
            Some(forge(
                Algorithm::HS256,
                JWT_SECRET,
                json!({"sub": "m", "role": "admin", "iss": ISSUER, "aud": AUDIENCE}),
            )),
        ),
        (
            "wrong issuer",
            Some(forge(
                Algorithm::HS256,
                JWT_SECRET,
                claims(later, "someone-else", AUDIENCE),
            )),
        ),
        (
            "wrong audience",
            Some(forge(
                Algorithm::HS256,
                JWT_SECRET,
                claims(later, ISSUER, "other"),
            )),
        ),
        (
            "not yet valid (nbf in an hour)",
            Some(forge(
                Algorithm::HS256,
                JWT_SECRET,
                json!({"sub": "m", "role": "admin", "exp": later, "nbf": now() + 3600, "iss": ISSUER, "aud": AUDIENCE}),
            )),
        ),
        (
            "no issuer",
            Some(forge(
                Algorithm::HS256,
                JWT_SECRET,
                json!({"sub": "m", "role": "admin", "exp": later, "aud": AUDIENCE}),
            )),
        ),
        (
            "no audience",
            Some(forge(
                Algorithm::HS256,
                JWT_SECRET,
                json!({"sub": "m", "role": "admin", "exp": later, "iss": ISSUER}),
            )),
        ),
        (
            "no role",
            Some(forge(
                Algorithm::HS256,
                JWT_SECRET,
                json!({"sub": "m", "exp": later, "iss": ISSUER, "aud": AUDIENCE}),
            )),
        ),
        (
            "HS384",
            Some(forge(
                Algorithm::HS384,
                JWT_SECRET,
                claims(later, ISSUER, AUDIENCE),
            )),
        ),
        (
            "unknown role",
            Some(forge(
                Algorithm::HS256,
                JWT_SECRET,
                json!({"sub": "m", "role": "root", "exp": later, "iss": ISSUER, "aud": AUDIENCE}),
            )),
        ),
    ];
    for (what, token) in cases {
        let r = app
            .post("/v1/messages", token.as_deref(), &json!({"recipient": {"psid": "1"}, "category": "response", "message": {"text": "x"}}))
            .await;
        assert_eq!(r.status().as_u16(), 401, "{what}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let body: Value = r.json().await.expect("problem body");
        assert_eq!(body["status"], 401, "{what}: {body}");
    }
    // The same request with a good token passes authentication (and is then judged on its merits).
    let good = forge(
        Algorithm::HS256,
        JWT_SECRET,
        claims(later, ISSUER, AUDIENCE),
    );
    let r = app
        .post(
            "/v1/messages",
            Some(&good),
            &json!({"recipient": {"psid": "1"}, "category": "response", "message": {"text": "x"}}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 422);
}

#[tokio::test]
async fn each_role_reaches_only_its_routes() {
    let app = spawn_app().await;
    let message =
        json!({"recipient": {"psid": "77"}, "category": "response", "message": {"text": "x"}});
    let consent = json!({"recipient": {"psid": "77"}, "scope": "transactional", "source": "s", "evidence": "e"});
    let receipt = json!({"recipient": {"psid": "78"}, "order": {
        "order_number": "A-1", "currency": "EUR", "payment_method": "Visa", "recipient_name": "Ada",
        "summary": {"total_cost": 1}, "elements": [{"title": "Teapot", "price": 1}]}});
    // (role, path, body, expected status)
    let cases = [
        (Role::Compliance, "/v1/messages", message.clone(), 403),
        (Role::Compliance, "/v1/consents", consent.clone(), 403),
        (Role::Marketer, "/v1/consents", consent.clone(), 403),
        // Which role may send which category is the policy's [roles] alone.
        (Role::Marketer, "/v1/receipts", receipt.clone(), 403),
        (Role::Backend, "/v1/receipts", receipt.clone(), 422),
        (Role::Backend, "/v1/consents", consent.clone(), 201),
        (Role::Admin, "/v1/consents", consent.clone(), 201),
        // A backend may not send marketing: the policy's role rule refuses it, and says so.
        (
            Role::Backend,
            "/v1/messages",
            json!({"recipient": {"psid": "77"}, "category": "marketing", "message": {"text": "sale"}}),
            403,
        ),
        (Role::Marketer, "/v1/messages", message.clone(), 403),
        (Role::Backend, "/v1/policy/reload", json!({}), 403),
    ];
    for (role, path, body, expected) in cases {
        let (status, answer) = app.call(role, path, body).await;
        assert_eq!(status, expected, "{role} POST {path}: {answer}");
    }
    let (status, answer) = app
        .call(Role::Backend, "/v1/messages", json!({"recipient": {"psid": "77"}, "category": "marketing", "message": {"text": "sale"}}))
        .await;
    assert_eq!(
        (status, answer["reason"].as_str()),
        (403, Some("role_forbidden")),
        "{answer}"
    );
    let r = app
        .get("/v1/recipients/77", Some(&app.token(Role::Marketer)))
        .await;
    assert_eq!(r.status().as_u16(), 403);
    let r = app
        .get("/v1/recipients/77", Some(&app.token(Role::Compliance)))
        .await;
    assert_eq!(r.status().as_u16(), 200);
}
