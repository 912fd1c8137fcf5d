from django.urls import path

from dashboards import views

urlpatterns = [
    path("dashboards/", views.dashboard_list, name="dashboards"),
    path("dashboards/<uuid:dashboard_id>/", views.dashboard_detail, name="dashboard-page"),
]
