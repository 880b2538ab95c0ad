"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with the right status."""

from __future__ import annotations

from django.http import JsonResponse


class ApiError(Exception):
    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": {"message": self.message, "type": self.type, "param": self.param,
                                           "code": self.code}}, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return response


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def model_not_found(model: str) -> ApiError:
    # The same answer for unknown and foreign models: never reveal that another org's model exists.
    return ApiError(404, f"The model `{model}` does not exist or you do not have access to it.",
                    param="model", code="model_not_found")


def not_found(message: str, param: str | None = None) -> ApiError:
    return ApiError(404, message, param=param, code="not_found")


def unavailable(message: str) -> ApiError:
    return ApiError(503, message, type="server_error", code="no_inference_worker", headers={"Retry-After": "5"})
