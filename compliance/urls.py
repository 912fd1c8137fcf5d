from django.urls import path

from compliance import views

urlpatterns = [path("compliance/", views.overview, name="compliance")]
