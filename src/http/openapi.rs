//! `GET /api/openapi.json`: the OpenAPI 3 document, built from the route table below, which the
//! router test and the hand-back document test both check against the running service.

use axum::Json;
use serde_json::{json, Map, Value};

/// One documented operation: method, path, summary, whether it needs the key, request body
/// schema (if any) and the success status.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub authenticated: bool,
    pub body: Option<Body>,
    /// Query parameters, with their schemas.
    pub query: &'static [(&'static str, Schema)],
    pub success: u16,
    /// The success response's media type.
    pub produces: &'static str,
}

/// A request body: its schema, and whether a request may leave it out (no content type).
pub struct Body {
    pub schema: &'static str,
    pub required: bool,
}

/// The type of a parameter, as the server reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Integer,
    /// A job id: letters, digits, `-` and `_`.
    JobId,
    /// A universe part: 1–200 characters, no `/`.
    Part,
    /// A ticker.
    Ticker,
    DateTime,
}

const JSON: &str = "application/json";

fn schema_of(schema: Schema) -> Value {
    match schema {
        Schema::Integer => json!({"type": "integer", "format": "int64"}),
        Schema::JobId => {
            json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,100}$"})
        }
        Schema::Part => json!({"type": "string", "minLength": 1, "maxLength": 200}),
        Schema::Ticker => json!({"type": "string", "minLength": 1, "maxLength": 20}),
        Schema::DateTime => json!({"type": "string", "format": "date-time"}),
    }
}

/// The type of each path parameter the routes use.
fn path_schema(name: &str) -> Schema {
    match name {
        "run_id" => Schema::Integer,
        "job_id" => Schema::JobId,
        "symbol" => Schema::Ticker,
        _ => Schema::Part,
    }
}

/// Every endpoint the service answers.
pub const ROUTES: &[Route] = &[
    Route {
        method: "get",
        path: "/health",
        summary: "Service and database health",
        authenticated: false,
        body: None,
        query: &[],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/health/live",
        summary: "Liveness: the process serves requests (touches no database)",
        authenticated: false,
        body: None,
        query: &[],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/health/ready",
        summary: "Readiness: the database answers and its migrations are applied (503 with a reason otherwise); Redis reported",
        authenticated: false,
        body: None,
        query: &[],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "post",
        path: "/api/processing/cache-sync/trigger",
        summary: "Start a cache sync job (mode full, market_cap, themes or ipos; optional plan_id)",
        authenticated: true,
        body: Some(Body {
            schema: "TriggerRequest",
            required: false,
        }),
        query: &[],
        success: 202,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/api/processing/cache-sync/status/{job_id}",
        summary: "A job's status and progress",
        authenticated: true,
        body: None,
        query: &[],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/api/processing/cache-sync/history",
        summary: "Jobs, newest first (limit, offset)",
        authenticated: true,
        body: None,
        query: &[("limit", Schema::Integer), ("offset", Schema::Integer)],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/api/processing/cache-sync/stats",
        summary: "Universes with counts, and job statistics over 7 days",
        authenticated: true,
        body: None,
        query: &[],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "post",
        path: "/api/processing/cache-sync/plan",
        summary: "The deltas a run would apply, and a plan id; writes nothing",
        authenticated: true,
        body: Some(Body {
            schema: "PlanRequest",
            required: false,
        }),
        query: &[],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "post",
        path: "/api/processing/cache-sync/rollback",
        summary: "Roll back to the state after a run (dry_run to only plan it)",
        authenticated: true,
        body: Some(Body {
            schema: "RollbackRequest",
            required: true,
        }),
        query: &[],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/api/processing/cache-sync/runs/{run_id}/replay",
        summary: "The whole owned catalog after a run, rebuilt from the audit log",
        authenticated: true,
        body: None,
        query: &[],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/api/universes",
        summary: "Every owned universe with its member count and hash",
        authenticated: true,
        body: None,
        query: &[],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/api/universes/{type}/{name}/{key}",
        summary: "One universe now, or after a run (at_run) or at a time (at)",
        authenticated: true,
        body: None,
        query: &[("at_run", Schema::Integer), ("at", Schema::DateTime)],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/api/universes/{type}/{name}/{key}/history",
        summary: "A universe's changes with member reasons",
        authenticated: true,
        body: None,
        query: &[("limit", Schema::Integer)],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/api/symbols/{symbol}/history",
        summary: "Every universe a symbol joined or left, and why",
        authenticated: true,
        body: None,
        query: &[("limit", Schema::Integer)],
        success: 200,
        produces: JSON,
    },
    Route {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics",
        authenticated: true,
        body: None,
        query: &[],
        success: 200,
        produces: "text/plain",
    },
    Route {
        method: "get",
        path: "/api/openapi.json",
        summary: "This document",
        authenticated: true,
        body: None,
        query: &[],
        success: 200,
        produces: JSON,
    },
];

fn schemas() -> Value {
    json!({
        "TriggerRequest": {"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["full", "market_cap", "themes", "ipos"], "default": "full"},
            "force": {"type": "boolean", "default": false},
            "plan_id": {"type": "string", "nullable": true}
        }, "additionalProperties": false},
        "PlanRequest": {"type": "object", "properties": {
            "mode": {"type": "string", "enum": ["full", "market_cap", "themes", "ipos"], "nullable": true, "default": "full"}
        }, "additionalProperties": false},
        "RollbackRequest": {"type": "object", "required": ["to_run"], "properties": {
            "to_run": {"type": "integer"},
            "dry_run": {"type": "boolean", "default": false},
            "force": {"type": "boolean", "default": false}
        }, "additionalProperties": false},
        "Error": {"type": "object", "required": ["success", "message", "error"], "properties": {
            "success": {"type": "boolean", "enum": [false]},
            "message": {"type": "string", "description": "what went wrong (the same text as error.message)"},
            "error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}
        }}
    })
}

/// The document.
pub fn spec() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let mut op = json!({
            "summary": route.summary,
            "responses": {
                route.success.to_string(): {"description": "success", "content": {route.produces: {}}},
                "4XX": {"description": "bad request, unauthorized, not found or conflict", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if route.authenticated {
            op["security"] = json!([{"ApiKey": []}]);
        }
        if let Some(body) = &route.body {
            let schema = format!("#/components/schemas/{}", body.schema);
            op["requestBody"] = json!({"required": body.required,
                                       "content": {JSON: {"schema": {"$ref": schema}}}});
        }
        let path_params = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true,
                               "schema": schema_of(path_schema(name))})
            });
        let query_params = route.query.iter().map(|(name, schema)| {
            json!({"name": name, "in": "query", "required": false, "schema": schema_of(*schema)})
        });
        let params: Vec<Value> = path_params.chain(query_params).collect();
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        let entry = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "tickstock-cache-sync", "version": env!("CARGO_PKG_VERSION"),
                 "description": "TickStock Phase 2.5: the universe cache synchronizer's admin API"},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
        }
    })
}

/// `GET /api/openapi.json`.
pub async fn document() -> Json<Value> {
    Json(spec())
}
