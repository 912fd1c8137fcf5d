"""The catalog in the platform admin site: read-only (it is loaded from the data files)."""

from django.contrib import admin

from compliance_catalog.models import CatalogLoad, Control, Framework, Requirement


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Framework)
class FrameworkAdmin(ReadOnlyAdmin):
    list_display = ["code", "name", "version", "revision"]


@admin.register(Requirement)
class RequirementAdmin(ReadOnlyAdmin):
    list_display = ["framework", "ref", "title", "group_title"]
    list_filter = ["framework"]
    search_fields = ["ref", "title"]


@admin.register(Control)
class ControlAdmin(ReadOnlyAdmin):
    list_display = ["code", "title", "check_name", "retired"]
    search_fields = ["code", "title"]


@admin.register(CatalogLoad)
class CatalogLoadAdmin(ReadOnlyAdmin):
    list_display = ["loaded_at", "digest"]
