//! Authentication: HS256 JWTs, the bearer extractors and bcrypt off the async workers.

use std::{
    future::{Ready, ready},
    time::Duration,
};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use inventory_domain::{Password, Role, User, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{config::JwtSettings, error::ApiError};

/// Clock skew tolerated on `exp`/`iat`, in seconds.
const LEEWAY_SECONDS: u64 = 5;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
    iss: String,
    aud: String,
    role: String,
}

/// Signs and validates access tokens.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

/// A freshly issued token.
pub struct IssuedToken {
    /// The compact JWT.
    pub token: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

impl JwtKeys {
    /// Keys from the (already length-checked) settings.
    pub fn new(settings: &JwtSettings) -> Self {
        let secret = settings.secret.expose_secret().as_bytes();
        // jsonwebtoken's defaults are lax (60 s leeway, only `exp` required): spell out
        // everything.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = false;
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ttl: settings.ttl,
        }
    }

    /// A token for `user`.
    pub fn issue(&self, user: &User) -> Result<IssuedToken, ApiError> {
        let now = u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
        let claims = Claims {
            sub: user.id.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            role: user.role.as_str().to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("signing a token: {e}")))?;
        Ok(IssuedToken {
            token,
            expires_in: self.ttl.as_secs(),
        })
    }

    /// The caller a token stands for; any defect is [`ApiError::Unauthenticated`].
    pub fn verify(&self, token: &str) -> Result<AuthUser, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| {
                tracing::debug!(reason = %e, "rejected a bearer token");
                ApiError::Unauthenticated
            })?;
        let now = u64::try_from(OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
        if data.claims.iat > now + LEEWAY_SECONDS {
            return Err(ApiError::Unauthenticated);
        }
        let id = data
            .claims
            .sub
            .parse::<UserId>()
            .map_err(|_| ApiError::Unauthenticated)?;
        let role = data
            .claims
            .role
            .parse::<Role>()
            .map_err(|_| ApiError::Unauthenticated)?;
        Ok(AuthUser { id, role })
    }
}

/// The authenticated caller (from `Authorization: Bearer <jwt>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthUser {
    /// Who.
    pub id: UserId,
    /// With which role (as of token issue).
    pub role: Role,
}

impl AuthUser {
    /// True for admins.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let keys = req
        .app_data::<web::Data<JwtKeys>>()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("JwtKeys are not registered")))?;
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(ApiError::Unauthenticated)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthenticated);
    }
    keys.verify(token.trim())
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// An authenticated admin; others get 403.
#[derive(Debug, Clone, Copy)]
pub struct AdminUser(pub AuthUser);

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|user| {
            if user.is_admin() {
                Ok(AdminUser(user))
            } else {
                Err(ApiError::Forbidden)
            }
        }))
    }
}

/// bcrypt hashing and verification, always on the blocking pool.
pub struct PasswordHasher {
    cost: u32,
    /// Verified against when the user does not exist, so that both failures take as long.
    dummy_hash: String,
}

impl PasswordHasher {
    /// A hasher of the given cost (4–31); computes its dummy hash once.
    pub async fn new(cost: u32) -> anyhow::Result<Self> {
        let dummy_hash =
            web::block(move || bcrypt::hash("lockstock-dummy-password-for-timing", cost)).await??;
        Ok(Self { cost, dummy_hash })
    }

    /// Hashes a password.
    pub async fn hash(&self, password: Password) -> Result<String, ApiError> {
        let cost = self.cost;
        web::block(move || bcrypt::hash(password.expose(), cost))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("bcrypt task failed: {e}")))?
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("bcrypt hash failed: {e}")))
    }

    /// True when `password` matches `hash`. With `hash == None` (unknown user) it does
    /// the same work against a dummy hash and answers false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = web::block(move || bcrypt::verify(password.as_bytes(), &hash))
            .await
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("bcrypt task failed: {e}")))?
            // A stored hash that does not parse is a data problem, not a wrong password.
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("bcrypt verify failed: {e}")))?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;
    use crate::config::JwtSettings;

    fn settings(secret: &str) -> JwtSettings {
        JwtSettings {
            secret: SecretString::from(secret.to_owned()),
            secret_generated: false,
            issuer: "lockstock".into(),
            audience: "lockstock-api".into(),
            ttl: Duration::from_secs(60),
        }
    }

    fn user() -> User {
        User {
            id: UserId(7),
            username: inventory_domain::Username::parse("alice").unwrap(),
            email: None,
            role: Role::Admin,
            password_hash: String::new(),
            created_at: OffsetDateTime::now_utc(),
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip() {
        let keys = JwtKeys::new(&settings(SECRET));
        let token = keys.issue(&user()).unwrap();
        let caller = keys.verify(&token.token).unwrap();
        assert_eq!(caller.id, UserId(7));
        assert!(caller.is_admin());
    }

    #[test]
    fn other_key_issuer_or_audience_is_rejected() {
        let token = JwtKeys::new(&settings(SECRET))
            .issue(&user())
            .unwrap()
            .token;
        let other = JwtKeys::new(&settings("another-secret-of-at-least-32-bytes!"));
        assert!(other.verify(&token).is_err());
        let mut s = settings(SECRET);
        s.audience = "elsewhere".into();
        assert!(JwtKeys::new(&s).verify(&token).is_err());
        let mut s = settings(SECRET);
        s.issuer = "elsewhere".into();
        assert!(JwtKeys::new(&s).verify(&token).is_err());
    }

    #[test]
    fn alg_none_is_rejected() {
        let keys = JwtKeys::new(&settings(SECRET));
        let token = keys.issue(&user()).unwrap().token;
        let payload = token.split('.').nth(1).unwrap();
        // {"alg":"none","typ":"JWT"}
        let forged = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(keys.verify(&forged).is_err());
    }

    #[test]
    fn expired_is_rejected() {
        let keys = JwtKeys::new(&settings(SECRET));
        let now = OffsetDateTime::now_utc().unix_timestamp() as u64;
        let claims = Claims {
            sub: "7".into(),
            iat: now - 120,
            exp: now - 60,
            iss: "lockstock".into(),
            aud: "lockstock-api".into(),
            role: "user".into(),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&token).is_err());
    }

    #[actix_web::test]
    async fn hashing_and_verification() {
        let hasher = PasswordHasher::new(4).await.unwrap();
        let hash = hasher
            .hash(Password::parse("correct horse").unwrap())
            .await
            .unwrap();
        assert!(
            hasher
                .verify("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("wrong horse".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!hasher.verify("correct horse".into(), None).await.unwrap());
    }
}
