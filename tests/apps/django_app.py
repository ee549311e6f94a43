"""A one-file Django project: settings, URLs and views here, served as ASGI."""

import json

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="tests-only-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpResponseNotAllowed, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def hello(request):
    return JsonResponse({"framework": "django", "path": request.path,
                         "q": request.GET.get("q"), "script_name": request.META.get("SCRIPT_NAME")})


@csrf_exempt
def submit(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    data = json.loads(request.body or b"{}")
    return JsonResponse({"received": data, "content_type": request.content_type}, status=201)


urlpatterns = [
    path("hello/", hello),
    path("submit/", submit),
]

application = get_asgi_application()
