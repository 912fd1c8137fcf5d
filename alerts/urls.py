from django.urls import path

from alerts import views

urlpatterns = [
    path("alerts/rules/", views.rule_list, name="alert-rules"),
    path("incidents/", views.incident_list, name="incidents"),
]
