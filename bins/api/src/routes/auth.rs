//! `/api/auth/*`: registration, login and the caller's own account.

use actix_web::{
    HttpMessage, HttpRequest, HttpResponse,
    http::header::{self, CacheControl, CacheDirective},
    web,
};
use futures::StreamExt;
use inventory_domain::{Email, NewUser, Password, Role, User, Username, ValidationErrors};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{
    auth::AuthUser,
    error::{ApiError, Problem},
    extract::{FORM_LIMIT, serde_json_error},
    state::AppState,
};

/// Registration body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–50 characters of `[A-Za-z0-9_.-]`.
    #[schema(
        example = "alice",
        min_length = 3,
        max_length = 50,
        pattern = "^[A-Za-z0-9_.-]{3,50}$"
    )]
    pub username: String,
    /// 8–72 bytes (UTF-8).
    #[schema(example = "correct horse battery", min_length = 8, max_length = 72, format = Password)]
    pub password: String,
    /// Optional contact address.
    #[schema(example = "alice@example.com")]
    pub email: Option<String>,
}

impl RegisterRequest {
    fn parse(self) -> Result<(Username, Password, Option<Email>), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let username = errors.check(Username::parse(self.username));
        let password = errors.check(Password::parse(self.password));
        let email = match self.email {
            Some(email) => errors.check(Email::parse(email)).map(Some),
            None => Some(None),
        };
        match (username, password, email) {
            (Some(u), Some(p), Some(e)) => Ok((u, p, e)),
            _ => Err(errors),
        }
    }
}

/// Login credentials: the OAuth2 password form (`grant_type=password`, as sent by
/// Swagger UI's Authorize button) or the same fields as JSON. Extra OAuth2 fields
/// (`grant_type`, `scope`, `client_id`, …) are accepted and ignored.
#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    /// The username.
    #[schema(example = "alice")]
    pub username: String,
    /// The password.
    #[schema(example = "correct horse battery", format = Password)]
    pub password: String,
    /// OAuth2 grant type; `password` when given.
    #[schema(example = "password")]
    pub grant_type: Option<String>,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    /// Id.
    pub id: u64,
    /// Username.
    pub username: String,
    /// E-mail, if given.
    pub email: Option<String>,
    /// Role.
    pub role: RoleDto,
    /// Registration time (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// Role of a user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleDto {
    /// A buyer.
    User,
    /// Catalogue manager.
    Admin,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id.get(),
            username: user.username.as_str().to_owned(),
            email: user.email.map(|e| e.as_str().to_owned()),
            role: match user.role {
                Role::User => RoleDto::User,
                Role::Admin => RoleDto::Admin,
            },
            created_at: user.created_at,
        }
    }
}

/// An access token (OAuth2 token response).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT to send as `Authorization: Bearer …`.
    pub access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    /// Lifetime in seconds.
    #[schema(example = 900)]
    pub expires_in: u64,
}

/// Register a new user account.
#[utoipa::path(
    post, path = "/api/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserResponse,
            headers(("Location" = String, description = "Where the account can be read (`/api/auth/me` with its token)"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Username taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn register(
    state: web::Data<AppState>,
    body: web::Json<RegisterRequest>,
) -> Result<HttpResponse, ApiError> {
    let (username, password, email) = body.into_inner().parse()?;
    // Cheap early answer; the repository still enforces uniqueness atomically.
    if state
        .repos
        .users
        .find_by_username(&username)
        .await?
        .is_some()
    {
        return Err(ApiError::UsernameTaken);
    }
    let password_hash = state.passwords.hash(password).await?;
    let user = state
        .repos
        .users
        .create(NewUser {
            username,
            email,
            role: Role::User,
            password_hash,
        })
        .await?;
    tracing::info!(user.id = %user.id, "user registered");
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, "/api/auth/me"))
        .json(UserResponse::from(user)))
}

/// Log in and get a bearer token.
///
/// Accepts the OAuth2 password form (`application/x-www-form-urlencoded`) and JSON.
/// Unknown users and wrong passwords get the same answer in about the same time.
/// Repeated failures for one username or from one address are throttled (429).
#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth",
    request_body(content(
        (LoginRequest = "application/x-www-form-urlencoded"),
        (LoginRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "Token issued", body = TokenResponse),
        (status = 400, description = "Malformed body", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid credentials", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Neither form nor JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Missing fields", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub async fn login(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let credentials = read_credentials(&req, payload).await?;
    let address = req.peer_addr().map(|a| a.ip());
    state
        .throttle
        .check(&credentials.username, address)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;

    let user = match Username::parse(credentials.username.clone()) {
        Ok(username) => state.repos.users.find_by_username(&username).await?,
        Err(_) => None,
    };
    // A password bcrypt cannot take is checked against the dummy hash: same time, no match.
    let hash = user
        .as_ref()
        .filter(|_| Password::parse(credentials.password.clone()).is_ok())
        .map(|u| u.password_hash.clone());
    let verified = state.passwords.verify(credentials.password, hash).await?;
    match user {
        Some(user) if verified => {
            state.throttle.record_success(&credentials.username);
            let token = state.jwt.issue(&user)?;
            tracing::info!(user.id = %user.id, "login succeeded");
            Ok(HttpResponse::Ok()
                .insert_header(CacheControl(vec![CacheDirective::NoStore]))
                .json(TokenResponse {
                    access_token: token.token,
                    token_type: "bearer",
                    expires_in: token.expires_in,
                }))
        }
        _ => {
            state
                .throttle
                .record_failure(&credentials.username, address);
            tracing::info!("login failed");
            Err(ApiError::InvalidCredentials)
        }
    }
}

async fn read_credentials(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<LoginRequest, ApiError> {
    let content_type = req.content_type().to_ascii_lowercase();
    let is_form = content_type == "application/x-www-form-urlencoded";
    if !is_form && content_type != "application/json" {
        return Err(ApiError::UnsupportedMediaType(
            "send the OAuth2 password form (application/x-www-form-urlencoded) or JSON".into(),
        ));
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(crate::extract::payload_error)?;
        if body.len() + chunk.len() > FORM_LIMIT {
            return Err(ApiError::PayloadTooLarge { limit: FORM_LIMIT });
        }
        body.extend_from_slice(&chunk);
    }
    if is_form {
        serde_urlencoded::from_bytes(&body)
            .map_err(|e| ApiError::Unprocessable(format!("invalid login form: {e}")))
    } else {
        serde_json::from_slice(&body).map_err(|e| serde_json_error(&e))
    }
}

/// The caller's own account.
#[utoipa::path(
    get, path = "/api/auth/me", tag = "auth",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn me(caller: AuthUser, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let user = state
        .repos
        .users
        .find_by_id(caller.id)
        .await?
        .ok_or(ApiError::Unauthenticated)?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}
