"""Pagination with a ceiling: a client cannot ask for the whole table in one response."""

from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000
