"""The official `openai` Python client against a running reel (scripts/openai_client.sh).

Every call goes through the client's own code paths (multipart create, polling, download,
list, delete, its exception classes), so a shape it does not expect fails here.
"""

import sys

import openai
from openai import OpenAI

base, token = sys.argv[1], sys.argv[2]
client = OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=0)

video = client.videos.create(model="reel", prompt="a small red circle moving left, then it grows",
                             seconds="8", size="128x128")
assert video.object == "video" and video.id.startswith("video_"), video
assert video.status in ("queued", "in_progress"), video
assert (video.seconds, video.size) == ("8", "128x128"), video

done = client.videos.poll(video.id, poll_interval_ms=100)
assert done.status == "completed" and done.progress == 100, done
assert done.completed_at is not None and done.error is None, done

mp4 = client.videos.download_content(video.id).read()
assert mp4[4:8] == b"ftyp", mp4[:16]

page = client.videos.list(limit=10)
assert video.id in [v.id for v in page.data], page

try:
    client.videos.create(model="reel", prompt="x", size="720x1280")
    raise AssertionError("a non-square size was accepted")
except openai.BadRequestError as e:
    assert e.body["param"] == "size", e.body

try:
    client.videos.retrieve("video_999999")
    raise AssertionError("a missing video was found")
except openai.NotFoundError:
    pass

try:
    OpenAI(base_url=f"{base}/v1", api_key="reel_wrong", max_retries=0).videos.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError:
    pass

gone = client.videos.delete(video.id)
assert gone.deleted and gone.id == video.id, gone
try:
    client.videos.retrieve(video.id)
    raise AssertionError("a deleted video is still there")
except openai.NotFoundError:
    pass

print(f"openai {openai.__version__}: create, poll, download ({len(mp4)} bytes), list, errors, delete: ok")
