//! The API's contract as a hand-written OpenAPI 3 document, served at `/openapi.json`.
//! Bounds and defaults come from `storage::TaskParams` and [`crate::models`], so the document cannot drift from the
//! validation; the tests call every documented operation to keep paths in step with routes.

use std::sync::OnceLock;

use serde_json::{json, Value};
use storage::{TaskParams, TaskStatus};

use crate::models::{DEFAULT_LIST_LIMIT, LIST_LIMIT, MAX_BODY_BYTES, SIZE_MULTIPLE};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn task_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Task"}}}
    })
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64", "minimum": 1}})
}

fn paths() -> Value {
    let statuses: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.name()).collect();
    json!({
        "/api/tasks": {
            "post": {
                "summary": "Submit a prompt; the video is generated in the background",
                "requestBody": {
                    "required": true,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateTask"}}}
                },
                "responses": {
                    "202": task_response("Accepted and queued"),
                    "400": error_response("Malformed JSON, wrong types, unknown fields, or values out of range"),
                    "411": error_response("No content-length"),
                    "413": error_response(&format!("Body over {MAX_BODY_BYTES} bytes")),
                    "415": error_response("Body is not application/json"),
                    "429": {
                        "description": "The queue is full; nothing was stored",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                    }
                }
            },
            "get": {
                "summary": "List tasks, newest first",
                "parameters": [
                    {"name": "status", "in": "query", "schema": {"type": "string", "enum": statuses}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": LIST_LIMIT.start(), "maximum": LIST_LIMIT.end(), "default": DEFAULT_LIST_LIMIT}},
                    {"name": "cursor", "in": "query", "description": "next_cursor of the previous page", "schema": {"type": "integer", "format": "int64"}}
                ],
                "responses": {
                    "200": {
                        "description": "One page",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TaskList"}}}
                    },
                    "400": error_response("Bad status, limit or cursor")
                }
            }
        },
        "/api/tasks/{id}": {
            "parameters": [id_param()],
            "get": {
                "summary": "One task: status, plan, progress, timings, links",
                "responses": {"200": task_response("The task"), "404": error_response("No such task")}
            },
            "delete": {
                "summary": "Cancel a queued or running task (a finished one is returned unchanged)",
                "responses": {"200": task_response("The task after cancelling"), "404": error_response("No such task")}
            }
        },
        "/api/tasks/{id}/events": {
            "parameters": [id_param()],
            "get": {
                "summary": "Server-sent events: status, progress, frame, done (then the stream ends)",
                "responses": {
                    "200": {"description": "An event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    "404": error_response("No such task")
                }
            }
        },
        "/api/tasks/{id}/stream": {
            "parameters": [id_param()],
            "get": {
                "summary": "The frames as they are made (MJPEG); a finished task's stored frames replayed",
                "responses": {
                    "200": {"description": "multipart/x-mixed-replace of image/jpeg or image/png parts", "content": {"multipart/x-mixed-replace": {"schema": {"type": "string", "format": "binary"}}}},
                    "404": error_response("No such task, or it ended without frames")
                }
            }
        },
        "/api/tasks/{id}/video": {
            "parameters": [
                id_param(),
                {"name": "Range", "in": "header", "description": "One byte range, e.g. bytes=0-1023", "schema": {"type": "string"}}
            ],
            "get": {
                "summary": "The finished MP4 (H.264)",
                "responses": {
                    "200": {"description": "The whole file", "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}},
                    "206": {"description": "The requested range", "content": {"video/mp4": {"schema": {"type": "string", "format": "binary"}}}},
                    "404": error_response("No such task, or no video (yet)"),
                    "416": error_response("Range outside the file")
                }
            }
        },
        "/api/tasks/{id}/frames/{n}": {
            "parameters": [
                id_param(),
                {"name": "n", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}}
            ],
            "get": {
                "summary": "Frame n: PNG once stored, JPEG while the task runs",
                "responses": {
                    "200": {"description": "The frame", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}, "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}},
                    "404": error_response("No such task or frame")
                }
            }
        },
        "/healthz": {"get": {"summary": "The process answers", "responses": {"200": {"description": "{\"status\":\"ok\"}"}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics: request latency by route and status, queue, stages, batches, cache, process CPU and RSS", "responses": {"200": {"description": "Prometheus text format"}}}},
        "/api/stats": {"get": {"summary": "CPU, memory, disk, network, GPU and queue at a glance", "responses": {"200": {"description": "Stats"}}}},
        "/readyz": {"get": {"summary": "Storage answers; what the pipeline serves with", "responses": {"200": {"description": "Ready"}, "503": {"description": "Storage unavailable"}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3 JSON"}}}}
    })
}

fn schemas() -> Value {
    let statuses: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.name()).collect();
    json!({
        "CreateTask": {
            "type": "object",
            "additionalProperties": false,
            "required": ["prompt"],
            "properties": {
                "prompt": {"type": "string", "minLength": 1, "maxLength": TaskParams::PROMPT_MAX_CHARS, "description": "English or Chinese; trimmed"},
                "num_scenes": {"type": "integer", "minimum": TaskParams::NUM_SCENES.0, "maximum": TaskParams::NUM_SCENES.1, "default": TaskParams::DEFAULT_NUM_SCENES},
                "seed": {"type": "integer", "format": "int64", "minimum": 0, "description": "Random when omitted (and recorded)"},
                "steps": {"type": "integer", "minimum": TaskParams::STEPS.0, "maximum": TaskParams::STEPS.1, "default": TaskParams::DEFAULT_STEPS},
                "guidance": {"type": "number", "minimum": TaskParams::GUIDANCE.0, "maximum": TaskParams::GUIDANCE.1, "default": TaskParams::DEFAULT_GUIDANCE},
                "seconds_per_scene": {"type": "number", "minimum": TaskParams::SECONDS_PER_SCENE.0, "maximum": TaskParams::SECONDS_PER_SCENE.1, "default": TaskParams::DEFAULT_SECONDS_PER_SCENE},
                "fps": {"type": "integer", "minimum": TaskParams::FPS.0, "maximum": TaskParams::FPS.1, "default": TaskParams::DEFAULT_FPS},
                "size": {"type": "integer", "minimum": TaskParams::SIZE.0, "maximum": TaskParams::SIZE.1, "multipleOf": SIZE_MULTIPLE, "default": TaskParams::DEFAULT_SIZE}
            }
        },
        "TaskParams": {
            "type": "object",
            "description": "The request with every default filled in",
            "properties": {
                "prompt": {"type": "string"}, "num_scenes": {"type": "integer"}, "seed": {"type": "integer", "format": "int64"},
                "steps": {"type": "integer"}, "guidance": {"type": "number"}, "seconds_per_scene": {"type": "number"},
                "fps": {"type": "integer"}, "size": {"type": "integer"}
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
                "plan": {
                    "type": "array", "nullable": true,
                    "items": {"type": "object", "properties": {
                        "caption": {"type": "string"},
                        "guessed": {"type": "array", "items": {"type": "string", "enum": ["size", "color", "shape", "motion", "background"]}}
                    }}
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

/// The document (built once).
pub fn spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        json!({
            "openapi": "3.0.3",
            "info": {
                "title": "reel",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "Text-to-video generation: submit a prompt, follow its progress, fetch the video."
            },
            "paths": paths(),
            "components": {"schemas": schemas()}
        })
    })
}
