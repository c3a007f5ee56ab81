//! `/api/auth/*`: registration, login and the caller's own account.

use actix_web::{
    HttpMessage, HttpRequest, HttpResponse,
    http::header::{self, CacheControl, CacheDirective},
    web,
};
use inventory_domain::{Email, NewUser, Password, Role, User, Username, ValidationErrors};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::{
    auth::AuthUser,
    error::{ApiError, ProblemResponse, RetryLaterResponse},
    extract::{FORM_LIMIT, Json, check_declared_length, parse_json, read_body},
    state::AppState,
};

/// Registration body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–50 characters of `[A-Za-z0-9_.-]`, case-sensitive.
    #[schema(example = "alice", min_length = 3, max_length = 50)]
    pub username: String,
    /// 8–72 **bytes** of UTF-8 (bcrypt's limit; longer passwords are refused, never
    /// truncated). `minLength`/`maxLength` count characters, which are bytes for ASCII;
    /// JSON Schema cannot count bytes, so a password of non-ASCII characters may be
    /// refused under 72 characters, or accepted under 8.
    #[schema(example = "correct horse battery", min_length = 8, max_length = 72, format = Password)]
    pub password: String,
    /// Optional contact address: `local@domain.tld`, at most 254 characters, without
    /// whitespace or control characters (surrounding whitespace is trimmed).
    #[schema(example = "alice@example.com", max_length = 254)]
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
///
/// Errors: 400 malformed JSON or not UTF-8; 409 username taken; 413 body over 64 KiB;
/// 415 not `application/json`; 422 invalid fields (each one listed in `errors`) or
/// unknown fields; 429 too many registrations from this client address; 503 storage
/// unavailable.
#[utoipa::path(
    post, path = "/api/auth/register", operation_id = "register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserResponse,
            headers(("Location" = String, description = "Where the account can be read (`/api/auth/me` with its token)"))),
        (status = 400, response = ProblemResponse),
        (status = 409, response = ProblemResponse),
        (status = 413, response = ProblemResponse),
        (status = 415, response = ProblemResponse),
        (status = 422, response = ProblemResponse),
        (status = 429, response = RetryLaterResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: Json<RegisterRequest>,
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
    // Counted before the bcrypt hash it limits.
    state
        .registration_throttle
        .attempt(state.client_address(&req))
        .map_err(|retry_after| ApiError::RateLimited {
            retry_after,
            detail: "too many registrations from this address; retry later",
        })?;
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
///
/// Errors: 400 malformed body or JSON that is not UTF-8; 401 invalid credentials; 413
/// body over 16 KiB; 415 neither form nor JSON; 422 missing fields; 429 too many failed
/// attempts for this username or from this client address (an attempt counts from the
/// moment it is checked; a successful login gives it back); 503 storage unavailable.
#[utoipa::path(
    post, path = "/api/auth/login", operation_id = "login", tag = "auth",
    request_body(content(
        (LoginRequest = "application/x-www-form-urlencoded"),
        (LoginRequest = "application/json"),
    )),
    responses(
        (status = 200, description = "Token issued", body = TokenResponse),
        (status = 400, response = ProblemResponse),
        (status = 401, response = ProblemResponse),
        (status = 413, response = ProblemResponse),
        (status = 415, response = ProblemResponse),
        (status = 422, response = ProblemResponse),
        (status = 429, response = RetryLaterResponse),
        (status = 503, response = RetryLaterResponse),
    )
)]
pub async fn login(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let credentials = read_credentials(&req, payload).await?;
    let attempt = state
        .login_throttle
        .attempt(&credentials.username, state.client_address(&req))
        .map_err(|retry_after| ApiError::RateLimited {
            retry_after,
            detail: "too many failed login attempts; retry later",
        })?;

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
            attempt.succeeded();
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
        // The attempt stays counted.
        _ => {
            tracing::info!("login failed");
            Err(ApiError::InvalidCredentials)
        }
    }
}

async fn read_credentials(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<LoginRequest, ApiError> {
    let content_type = req.content_type().to_ascii_lowercase();
    let is_form = content_type == "application/x-www-form-urlencoded";
    if !is_form && content_type != "application/json" {
        return Err(ApiError::UnsupportedMediaType(
            "send the OAuth2 password form (application/x-www-form-urlencoded) or JSON".into(),
        ));
    }
    check_declared_length(req, FORM_LIMIT)?;
    let body = read_body(payload.into_inner(), FORM_LIMIT).await?;
    if is_form {
        serde_urlencoded::from_bytes(&body)
            .map_err(|e| ApiError::Unprocessable(format!("invalid login form: {e}")))
    } else {
        parse_json(&body)
    }
}

/// The caller's own account.
///
/// Errors: 401 no or invalid token; 503 storage unavailable.
#[utoipa::path(
    get, path = "/api/auth/me", operation_id = "me", tag = "auth",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse),
        (status = 401, response = ProblemResponse),
        (status = 503, response = RetryLaterResponse),
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
