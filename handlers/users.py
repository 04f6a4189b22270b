"""Users and their posts."""
from __future__ import annotations

from typing import Any

from brrt_actors import HTTPError, Request, Response

from ._paging import Page
from ._store import STORE

ALLOWED = "GET, HEAD, DELETE, OPTIONS"


def _user(request: Request) -> dict[str, Any]:
    user_id = str(request.path_params["user_id"]).lower()
    user = STORE.users.get(user_id)
    if user is None:
        raise HTTPError(404, f"user {user_id} not found")
    return user


def list_users(request: Request) -> dict[str, Any]:
    """Return one page of users and how many there are."""
    users = list(STORE.users.values())
    return {"users": Page(request).of(users), "total": len(users)}


def get_user(request: Request) -> dict[str, Any]:
    """Return one user, or 404."""
    return _user(request)


def delete_user(request: Request) -> Response:
    """Remove a user and their posts (204), or 404."""
    user = _user(request)
    del STORE.users[user["id"]]
    for post_id in [pid for pid, post in STORE.posts.items() if post["author_id"] == user["id"]]:
        del STORE.posts[post_id]
    return Response(204)


def head_user(request: Request) -> Response:
    """Answer 200 when the user exists, else 404 (no body either way)."""
    _user(request)
    return Response(200)


def options_user(request: Request) -> Response:
    """List the methods of a user resource in `Allow`."""
    return Response(204, headers={"Allow": ALLOWED})


def list_user_posts(request: Request) -> list[dict[str, Any]]:
    """Return one page of a user's posts, or 404 when there is no such user."""
    user = _user(request)
    posts = [post for post in STORE.posts.values() if post["author_id"] == user["id"]]
    return Page(request).of(posts)


def get_post(request: Request) -> dict[str, Any]:
    """Return one post of a user, or 404."""
    user = _user(request)
    post_id: str = request.path_params["post_id"]
    post = STORE.posts.get(post_id)
    if post is None or post["author_id"] != user["id"]:
        raise HTTPError(404, f"user {user['id']} has no post {post_id}")
    return post
