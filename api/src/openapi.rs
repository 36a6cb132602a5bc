//! The API's contract as an OpenAPI 3 document, served at `/openapi.json`. Its paths,
//! methods, summaries and security come from the route table ([`crate::routes::ROUTES`]);
//! each operation's parameters and answers from [`operation`]; bounds and defaults from
//! `storage::TaskParams` and [`crate::models`]. The web page's files (`/`, `/page.css`,
//! `/page.js`) are routes like any other, documented by their content types. The tests check
//! that every table entry is routed and documented, and schemathesis (`.ci/run`) calls every
//! documented operation.

use contract::ModelSpec;
use serde_json::{json, Map, Value};
use storage::{TaskParams, TaskStatus};

use crate::models::{DEFAULT_LIST_LIMIT, LIST_LIMIT, MAX_BODY_BYTES};
use crate::routes::{Access, Route, ROUTES};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn retry_response(description: &str) -> Value {
    json!({
        "description": description,
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn json_response(description: &str, schema: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

fn task_response(description: &str) -> Value {
    json_response(description, "Task")
}

fn oa_response(description: &str, schema: &str) -> Value {
    json_response(description, schema)
}

fn video_param() -> Value {
    json!({"name": "video_id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^video_[0-9]+$"}})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1}})
}

fn body(schema: &str) -> Value {
    json!({
        "required": true,
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    })
}

/// Parameters, request body and answers of one route (its summary and security come from the
/// table); `None` for a route this function does not know, which a test forbids.
fn operation(r: &Route) -> Option<Value> {
    let binary = |ct: &str| json!({"description": "The file", "content": {ct: {"schema": {"type": "string", "format": "binary"}}}});
    let statuses: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.name()).collect();
    Some(match (r.method, r.path) {
        ("POST", "/api/tasks") => json!({
            "requestBody": body("CreateTask"),
            "responses": {
                "202": task_response("Accepted and queued"),
                "400": error_response("Malformed JSON, wrong types, unknown fields, values out of range, or over the pixel budget per task"),
                "411": error_response("No content-length"),
                "413": error_response(&format!("Body over {MAX_BODY_BYTES} bytes")),
                "415": error_response("Body is not application/json"),
                "429": retry_response("The queue is full, or this key is over a quota (in flight, per hour); nothing was stored"),
                "503": retry_response("The engine is recovering from a failure; nothing was stored"),
                "507": retry_response("Free disk space is below the server's floor; nothing was stored")
            }
        }),
        ("GET", "/api/tasks") => json!({
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": statuses}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": LIST_LIMIT.start(), "maximum": LIST_LIMIT.end(), "default": DEFAULT_LIST_LIMIT}},
                {"name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": {"type": "integer", "format": "int64", "minimum": 0}}
            ],
            "responses": {"200": json_response("One page", "TaskList"), "400": error_response("Bad status, limit or cursor")}
        }),
        ("GET", "/api/tasks/{id}") => json!({
            "parameters": [id_param()],
            "responses": {"200": task_response("The task"), "404": error_response("No such task (or not yours)")}
        }),
        ("DELETE", "/api/tasks/{id}") => json!({
            "parameters": [id_param()],
            "responses": {"200": task_response("The task after cancelling"), "404": error_response("No such task (or not yours)")}
        }),
        ("GET", "/api/tasks/{id}/events") => json!({
            "parameters": [id_param()],
            "responses": {
                "200": {"description": "An event stream of the task's progress. Events: `status` {status} first, then as the engine publishes them `status`, `progress` {scene, step, steps, overall}, `preview` {scene, step, steps, image: \"data:image/png;base64,...\"} (a small PNG of the scene's current estimate of its clean frames after that step: a few per scene, only while watched, none with --previews=false), `frame` {index, url}, and last `done` {status, video}, after which the stream ends.", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                "404": error_response("No such task (or not yours)")
            }
        }),
        ("GET", "/api/tasks/{id}/stream") => json!({
            "parameters": [id_param()],
            "responses": {
                "200": {"description": "multipart/x-mixed-replace of image/png parts", "content": {"multipart/x-mixed-replace": {"schema": {"type": "string", "format": "binary"}}}},
                "404": error_response("No such task, or it ended without frames")
            }
        }),
        ("GET", "/api/tasks/{id}/video") => json!({
            "parameters": [id_param(), {"name": "Range", "in": "header", "description": "One byte range, e.g. bytes=0-1023", "schema": {"type": "string"}}],
            "responses": {
                "200": binary("video/mp4"),
                "206": binary("video/mp4"),
                "404": error_response("No such task, or no video (yet)"),
                "416": error_response("Range outside the file")
            }
        }),
        ("GET", "/api/tasks/{id}/frames/{n}") => json!({
            "parameters": [id_param(), {"name": "n", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}}],
            "responses": {"200": binary("image/png"), "404": error_response("No such task or frame")}
        }),
        ("POST", "/v1/videos") => json!({
            "requestBody": {
                "required": true,
                "content": {
                    "multipart/form-data": {"schema": {"$ref": "#/components/schemas/CreateVideo"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/CreateVideo"}}
                }
            },
            "responses": {
                "200": oa_response("The video job, queued", "Video"),
                "400": oa_response("A field is missing or out of range (error.param names it)", "OpenAiError"),
                "429": oa_response("The queue is full or a quota is reached", "OpenAiError"),
                "503": oa_response("The engine is recovering", "OpenAiError"),
                "507": oa_response("Free disk space is below the floor", "OpenAiError")
            }
        }),
        ("GET", "/v1/videos") => json!({
            "parameters": [
                {"name": "after", "in": "query", "description": "The last id of the previous page (empty: the first page)", "schema": {"type": "string", "pattern": "^(video_[0-9]+)?$"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["desc"]}}
            ],
            "responses": {"200": oa_response("One page", "VideoList"), "400": oa_response("Bad after, limit or order", "OpenAiError")}
        }),
        ("GET", "/v1/videos/{video_id}") => json!({
            "parameters": [video_param()],
            "responses": {"200": oa_response("The video job", "Video"), "404": oa_response("No such video (or not yours)", "OpenAiError")}
        }),
        ("DELETE", "/v1/videos/{video_id}") => json!({
            "parameters": [video_param()],
            "responses": {
                "200": {"description": "Deleted", "content": {"application/json": {"schema": {"type": "object", "properties": {"id": {"type": "string"}, "object": {"type": "string"}, "deleted": {"type": "boolean"}}}}}},
                "404": oa_response("No such video (or not yours)", "OpenAiError")
            }
        }),
        ("GET", "/v1/videos/{video_id}/content") => json!({
            "parameters": [
                video_param(),
                {"name": "variant", "in": "query", "schema": {"type": "string", "enum": ["video"]}}
            ],
            "responses": {
                "200": binary("video/mp4"),
                "400": oa_response("An unsupported variant", "OpenAiError"),
                "404": oa_response("No such video, or not finished", "OpenAiError")
            }
        }),
        ("POST", "/api/keys") => json!({
            "requestBody": body("CreateKey"),
            "responses": {"201": json_response("The key, its token and webhook secret (shown this once)", "CreatedKey"), "400": error_response("Bad name or priority")}
        }),
        ("GET", "/api/keys") => json!({
            "responses": {"200": json_response("Every key", "KeyList")}
        }),
        ("DELETE", "/api/keys/{key}") => json!({
            "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^key_[0-9a-f]+$"}}],
            "responses": {"200": json_response("The key, revoked", "Key"), "404": error_response("No such key")}
        }),
        ("GET", "/api/stats") => {
            json!({"responses": {"200": {"description": "Stats", "content": {"application/json": {"schema": {"type": "object"}}}}}})
        }
        ("GET", "/metrics") => {
            json!({"responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}}})
        }
        ("GET", "/healthz") => {
            json!({"responses": {"200": {"description": "{\"status\":\"ok\"}", "content": {"application/json": {"schema": {"type": "object"}}}}}})
        }
        ("GET", "/readyz") => json!({"responses": {
            "200": {"description": "Ready", "content": {"application/json": {"schema": {"type": "object"}}}},
            "503": {"description": "Not ready; `reasons` says why", "headers": {"Retry-After": {"schema": {"type": "integer"}}}, "content": {"application/json": {"schema": {"type": "object"}}}}
        }}),
        ("GET", "/openapi.json") => {
            json!({"responses": {"200": {"description": "OpenAPI 3 JSON", "content": {"application/json": {"schema": {"type": "object"}}}}}})
        }
        ("GET", "/") => page_operation("text/html"),
        ("GET", "/page.css") => page_operation("text/css"),
        ("GET", "/page.js") => page_operation("text/javascript"),
        _ => return None,
    })
}

/// A file of the web page: 200 with its body, or 304 when `If-None-Match` names its ETag.
fn page_operation(content_type: &str) -> Value {
    let headers = json!({
        "ETag": {"schema": {"type": "string"}},
        "Cache-Control": {"schema": {"type": "string"}}
    });
    json!({
        "parameters": [{"name": "If-None-Match", "in": "header", "description": "The ETag of the copy the browser holds", "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "The file", "headers": headers, "content": {content_type: {"schema": {"type": "string"}}}},
            "304": {"description": "Not modified: the browser's copy is current", "headers": headers}
        }
    })
}

fn paths() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut op = operation(r).unwrap_or_else(|| json!({"responses": {}}));
        op["summary"] = json!(r.summary);
        if r.access != Access::Public {
            op["security"] = json!([{"bearer": []}]);
            // The OpenAI-style routes answer in OpenAI's error shape.
            let error = |d: &str| match r.path.starts_with("/v1/") {
                true => json_response(d, "OpenAiError"),
                false => error_response(d),
            };
            let responses = &mut op["responses"];
            responses["401"] = error("No valid API key (when the server has keys)");
            if r.access == Access::Admin {
                responses["403"] = error("The key is not an admin key");
            }
        }
        let path = paths.entry(r.path).or_insert_with(|| json!({}));
        path[r.method.to_ascii_lowercase()] = op;
    }
    Value::Object(paths)
}

/// The create request's fields for the served model: the built-in model's `size` and
/// `seconds_per_scene`, or a free-form model's `width`, `height`, `num_frames`,
/// `negative_prompt` and `scheduler` with its defaults and multiples.
fn create_task(model: &ModelSpec) -> Value {
    let mut task = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["prompt"],
            "properties": {
                "prompt": {"type": "string", "minLength": 1, "maxLength": TaskParams::PROMPT_MAX_CHARS, "pattern": TaskParams::prompt_pattern(), "description": "English or Chinese; trimmed, and not blank"},
                "num_scenes": {"nullable": true, "type": "integer", "minimum": TaskParams::NUM_SCENES.0, "maximum": TaskParams::NUM_SCENES.1, "default": TaskParams::DEFAULT_NUM_SCENES},
                "seed": {"nullable": true, "type": "integer", "minimum": 0, "maximum": u64::MAX, "description": "Random when omitted (and recorded); any 64-bit unsigned value"},
                "steps": {"nullable": true, "type": "integer", "minimum": TaskParams::STEPS.0, "maximum": TaskParams::STEPS.1, "default": TaskParams::DEFAULT_STEPS},
                "guidance": {"nullable": true, "type": "number", "minimum": TaskParams::GUIDANCE.0, "maximum": TaskParams::GUIDANCE.1, "default": TaskParams::DEFAULT_GUIDANCE},
                "seconds_per_scene": {"nullable": true, "type": "number", "minimum": TaskParams::SECONDS_PER_SCENE.0, "maximum": TaskParams::SECONDS_PER_SCENE.1, "default": TaskParams::DEFAULT_SECONDS_PER_SCENE},
                "fps": {"nullable": true, "type": "integer", "minimum": TaskParams::FPS.0, "maximum": TaskParams::FPS.1, "default": TaskParams::DEFAULT_FPS},
                "size": {"nullable": true, "type": "integer", "minimum": TaskParams::SIZE.0, "maximum": TaskParams::SIZE.1, "multipleOf": TaskParams::SIZE_MULTIPLE, "default": TaskParams::DEFAULT_SIZE},
                "priority": {"nullable": true, "type": "integer", "minimum": TaskParams::PRIORITY.0, "maximum": TaskParams::PRIORITY.1, "description": "Higher first; at most the key's own priority (default 5) unless the key is an admin"},
                "webhook": {"nullable": true, "type": "string", "format": "uri", "maxLength": 2048, "description": "http(s) URL POSTed {event, task} as the task advances, signed: X-Reel-Signature: sha256=HMAC-SHA256(secret, body)"},
                "webhook_events_filter": {"nullable": true, "type": "array", "minItems": 1, "items": {"type": "string", "enum": ["start", "progress", "completed", "failed"]}}
            }
    });
    if let Some(f) = &model.free_form {
        let props = &mut task["properties"];
        if let Some(p) = props.as_object_mut() {
            p.remove("size");
            p.remove("seconds_per_scene");
        }
        let (lo, hi) = TaskParams::FREE_FORM_SIDE;
        let side = |multiple: u32, default: u32| json!({"nullable": true, "type": "integer", "minimum": lo.div_ceil(multiple) * multiple, "maximum": hi / multiple * multiple, "multipleOf": multiple, "default": default});
        props["width"] = side(f.width_multiple, f.width);
        props["height"] = side(f.height_multiple, f.height);
        props["num_frames"] = json!({"nullable": true, "type": "integer", "minimum": TaskParams::NUM_FRAMES.0, "maximum": TaskParams::NUM_FRAMES.1, "default": f.num_frames, "x-frame-multiple": f.frame_multiple, "description": format!("1 more than a multiple of {}", f.frame_multiple)});
        props["negative_prompt"] = json!({"nullable": true, "type": "string", "maxLength": TaskParams::PROMPT_MAX_CHARS, "default": ""});
        props["scheduler"] = json!({"nullable": true, "type": "string", "enum": f.schedulers, "default": f.schedulers.first()});
        props["num_scenes"]["default"] = json!(1);
        props["steps"]["default"] = json!(f.steps);
        props["guidance"]["default"] = json!(f.guidance);
        props["fps"]["default"] = json!(f.fps);
    }
    task
}

fn schemas(model: &ModelSpec) -> Value {
    let statuses: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.name()).collect();
    json!({
        "CreateTask": create_task(model),
        "CreateKey": {
            "type": "object",
            "additionalProperties": false,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "admin": {"type": "boolean", "default": false},
                "priority": {"nullable": true, "type": "integer", "minimum": TaskParams::PRIORITY.0, "maximum": TaskParams::PRIORITY.1}
            }
        },
        "CreateVideo": {
            "type": "object",
            "additionalProperties": false,
            "required": ["prompt"],
            "properties": {
                "prompt": {"type": "string", "minLength": 1, "maxLength": TaskParams::PROMPT_MAX_CHARS, "pattern": TaskParams::prompt_pattern()},
                "model": {"type": "string", "enum": [crate::openai::MODEL]},
                "seconds": {"type": "string", "enum": (1..=crate::openai::MAX_SECONDS).map(|n| n.to_string()).collect::<Vec<_>>(), "description": "Split into scenes of at most 4 s"},
                "size": {"type": "string", "enum": crate::openai::sizes(), "description": "Square: reel's frames are"}
            }
        },
        "Video": {
            "type": "object",
            "properties": {
                "id": {"type": "string"}, "object": {"type": "string"}, "created_at": {"type": "integer"},
                "status": {"type": "string", "enum": ["queued", "in_progress", "completed", "failed"]},
                "model": {"type": "string"}, "progress": {"type": "integer"}, "seconds": {"type": "string"},
                "size": {"type": "string"}, "completed_at": {"type": "integer", "nullable": true},
                "expires_at": {"type": "integer", "nullable": true},
                "error": {"type": "object", "nullable": true, "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                "remixed_from_video_id": {"type": "string", "nullable": true}
            }
        },
        "VideoList": {
            "type": "object",
            "properties": {
                "object": {"type": "string"}, "data": {"type": "array", "items": {"$ref": "#/components/schemas/Video"}},
                "first_id": {"type": "string", "nullable": true}, "last_id": {"type": "string", "nullable": true},
                "has_more": {"type": "boolean"}
            }
        },
        "OpenAiError": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "object", "properties": {
                "message": {"type": "string"}, "type": {"type": "string"},
                "param": {"type": "string", "nullable": true}, "code": {"type": "string"}
            }}}
        },
        "Key": {
            "type": "object",
            "properties": {
                "id": {"type": "string"}, "name": {"type": "string"}, "admin": {"type": "boolean"},
                "revoked": {"type": "boolean"}, "created_ms": {"type": "integer", "format": "int64"}, "priority": {"type": "integer"}
            }
        },
        "CreatedKey": {
            "allOf": [{"$ref": "#/components/schemas/Key"}, {"type": "object", "properties": {"token": {"type": "string"}, "webhook_secret": {"type": "string"}}}]
        },
        "KeyList": {
            "type": "object",
            "properties": {"keys": {"type": "array", "items": {"$ref": "#/components/schemas/Key"}}}
        },
        "TaskParams": {
            "type": "object",
            "description": "The request with every default filled in",
            "properties": {
                "prompt": {"type": "string"}, "num_scenes": {"type": "integer"}, "seed": {"type": "integer", "format": "int64"},
                "steps": {"type": "integer"}, "guidance": {"type": "number"}, "seconds_per_scene": {"type": "number"},
                "fps": {"type": "integer"}, "size": {"type": "integer"},
                "free_form": {"type": "object", "description": "A free-form model's scene (absent for the built-in model)", "properties": {
                    "width": {"type": "integer"}, "height": {"type": "integer"}, "num_frames": {"type": "integer"},
                    "negative_prompt": {"type": "string"}, "scheduler": {"type": "string"}
                }}
            }
        },
        "Progress": {
            "type": "object",
            "properties": {
                "overall": {"type": "number", "minimum": 0, "maximum": 1},
                "scenes": {"type": "array", "items": {"type": "number"}},
                "frames_ready": {"type": "integer"}
            }
        },
        "Task": {
            "type": "object",
            "properties": {
                "id": {"type": "integer", "format": "int64"},
                "status": {"type": "string", "enum": statuses},
                "created_ms": {"type": "integer", "format": "int64"},
                "updated_ms": {"type": "integer", "format": "int64"},
                "params": {"$ref": "#/components/schemas/TaskParams"},
                "priority": {"type": "integer"},
                "owner": {"type": "string", "nullable": true},
                "plan": {
                    "type": "array", "nullable": true,
                    "items": {"type": "object", "properties": {
                        "caption": {"type": "string"},
                        "guessed": {"type": "array", "items": {"type": "string", "enum": ["size", "color", "shape", "motion", "background"]}}
                    }}
                },
                "planner": {
                    "type": "object", "nullable": true,
                    "description": "How the LLM planner fared (null with the rule planner)",
                    "properties": {
                        "outcome": {"type": "string", "enum": ["llm", "cached", "fallback_timeout", "fallback_invalid", "fallback_error"]},
                        "model": {"type": "string"},
                        "reason": {"type": "string", "description": "Why the rule planner answered instead"}
                    }
                },
                "progress": {"$ref": "#/components/schemas/Progress"},
                "timings_ms": {"type": "object", "additionalProperties": {"type": "integer"}},
                "cached": {"type": "boolean"},
                "error": {"type": "string", "nullable": true},
                "artifact": {
                    "type": "object", "nullable": true,
                    "properties": {
                        "frame_count": {"type": "integer"}, "video_bytes": {"type": "integer"},
                        "width": {"type": "integer"}, "height": {"type": "integer"}, "fps": {"type": "integer"}
                    }
                },
                "links": {
                    "type": "object",
                    "properties": {
                        "self": {"type": "string"}, "events": {"type": "string"}, "stream": {"type": "string"},
                        "video": {"type": "string"}, "frames": {"type": "string", "description": "Template with {n}"}
                    }
                }
            }
        },
        "TaskList": {
            "type": "object",
            "properties": {
                "tasks": {"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
                "next_cursor": {"type": "integer", "format": "int64", "nullable": true}
            }
        },
        "Error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable reason, e.g. invalid_json, task_not_found, queue_full"},
                "message": {"type": "string"}
            }
        }
    })
}

/// The document for the served `model` (its request fields and defaults).
pub fn spec(model: &ModelSpec) -> Value {
    json!({
            "openapi": "3.0.3",
            "info": {
                "title": "reel",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "Text-to-video generation: submit a prompt, follow its progress, fetch the video."
            },
            "paths": paths(),
            "components": {
                "schemas": schemas(model),
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "An API key from `reel keys create` or POST /api/keys"}}
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        for r in ROUTES {
            assert!(
                operation(r).is_some(),
                "{} {} has no operation",
                r.method,
                r.path
            );
        }
        let doc = spec(&builtin());
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(documented, ROUTES.len());
    }

    fn builtin() -> ModelSpec {
        ModelSpec {
            id: "reel".into(),
            kind: contract::ModelKind::Builtin,
            parameters: 1,
            weight_bytes: 4,
            free_form: None,
        }
    }

    #[test]
    fn the_create_request_is_the_served_models() {
        let task = &spec(&builtin())["components"]["schemas"]["CreateTask"]["properties"];
        assert!(task.get("size").is_some() && task.get("width").is_none());
        let wan = ModelSpec {
            kind: contract::ModelKind::FreeForm,
            free_form: Some(contract::FreeFormSpec {
                width: 816,
                height: 480,
                num_frames: 81,
                fps: 16,
                steps: 50,
                guidance: 5.0,
                width_multiple: 24,
                height_multiple: 16,
                frame_multiple: 4,
                schedulers: vec!["unipc".into(), "euler".into()],
            }),
            ..builtin()
        };
        let task = &spec(&wan)["components"]["schemas"]["CreateTask"]["properties"];
        assert!(task.get("size").is_none() && task.get("seconds_per_scene").is_none());
        assert_eq!(task["width"]["multipleOf"], 24);
        assert_eq!(task["width"]["minimum"], 24);
        assert_eq!(task["width"]["maximum"], 1272);
        assert_eq!(task["height"]["default"], 480);
        assert_eq!(task["scheduler"]["enum"], json!(["unipc", "euler"]));
        assert_eq!(task["steps"]["default"], 50);
        // 1 + 4k frames: JSON Schema has no word for it, the extension names the 4.
        assert_eq!(task["num_frames"]["x-frame-multiple"], 4);
    }
}
