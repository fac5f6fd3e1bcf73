"""``povwatch serve``: the scheduled deployments and the failure Automation, on a Prefect server.

Deployments (time zone Asia/Shanghai), all served by one long-running process (``prefect.serve``):

=================  =====================  ==========================================================
deployment         schedule               what
=================  =====================  ==========================================================
povwatch-run/monthly          ``0 6 5 * *``   the monthly run: every period with new files, in order
povwatch-inbox-watch/inbox-watch  every 10 min  hashes the inbox; starts a run when a department
                                             delivers a new or changed file (sha256)
povwatch-bulletin/weekly-dispatch ``0 8 * * 1``  周调度 weekly dispatch summary of last week
povwatch-bulletin/dekad-bulletin  ``0 8 1,11,21 * *``  旬通报 bulletin of the last dekad
=================  =====================  ==========================================================

And an Automation ``povwatch-run-failed``: any of these flows' runs entering Failed or Crashed
sends a notification through a Custom Webhook block whose URL comes from ``POVWATCH_ALERT_URLS``
(the first ``http(s)://`` URL, or a ``json://`` / ``jsons://`` Apprise URL, which posts JSON over
http / https). See docs/orchestration.md.
"""
from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from prefect import flow
from prefect.states import Completed

from povwatch.flows.pipeline import inbox_flow
from povwatch.flows.runners import prepare_prefect
from povwatch.tasks.core.locking import is_locked, warehouse_lock
from povwatch.tasks.core.runs import loaded_hashes
from povwatch.tasks.ingest.inbox import hash_cache_path, pending_periods
from povwatch.tasks.core.settings import load_settings

log = logging.getLogger("povwatch")

TZ = "Asia/Shanghai"
WEEKLY_CRON = "0 8 * * 1"
DEKAD_CRON = "0 8 1,11,21 * *"
AUTOMATION_NAME = "povwatch-run-failed"
WEBHOOK_BLOCK_NAME = "povwatch-alerts"
FLOW_NAMES = ["povwatch-run", "povwatch-period", "povwatch-inbox-watch", "povwatch-bulletin"]
# The flows whose failure the Automation announces: one alert per failure. A period sub-flow's
# failure fails its povwatch-run too (announced once, there); a run started by the inbox watch
# fails on its own and the watch records it without failing a second time.
ALERTED_FLOWS = ["povwatch-run", "povwatch-inbox-watch", "povwatch-bulletin"]


@flow(name="povwatch-inbox-watch", log_prints=True)
def inbox_watch(inbox: str, warehouse: str, pipeline: Any = None):
    """Start a run when a department has delivered a new or changed file; otherwise do nothing.
    ``pipeline``: the business functions of the run (None: those of tasks/)."""
    if not Path(inbox).is_dir():
        raise FileNotFoundError(f"收件箱不存在 inbox not found: {inbox}")
    if is_locked(warehouse):
        return Completed(message="仓库正在写入，下次再查 / warehouse busy, checking next time")
    periods = pending_periods(Path(inbox), loaded_hashes(Path(warehouse)), hash_cache_path(Path(warehouse)))
    if not periods:
        return Completed(message="没有新数据 / nothing new")
    print(f"新数据 new files for {', '.join(periods)}: starting a run")
    state = inbox_flow(inbox=inbox, warehouse=warehouse, pipeline=pipeline, return_state=True)
    if not state.is_completed():   # the run's own Failed state is what the Automation announces
        return Completed(name="运行失败", message=f"启动的运行失败 / the run it started failed: {state.message}")
    summary = state.result()
    return Completed(name=state.name, message=summary["message"], data=summary)


@flow(name="povwatch-bulletin", flow_run_name="{kind}", log_prints=True)
def bulletin_flow(kind: str, warehouse: str, since: str | None = None, until: str | None = None):
    """周调度 (weekly) or 旬通报 (dekad) for the last complete week / dekad, as of Beijing time."""
    from prefect.artifacts import create_link_artifact

    from povwatch.tasks.office.bulletin import last_complete, write_bulletin

    if since and until:
        start, end = dt.date.fromisoformat(since), dt.date.fromisoformat(until)
    else:
        start, end = last_complete(kind, dt.datetime.now(ZoneInfo(TZ)).date())
    with warehouse_lock(warehouse, what=f"povwatch bulletin {kind}"):
        path = write_bulletin(Path(warehouse), kind, start, end)
    create_link_artifact(link=Path(path).resolve().as_uri(), link_text=f"{kind} {start}–{end}",
                         key=f"povwatch-bulletin-{kind}")
    return str(path)


# --------------------------------------------------------------------------------------------


class ServedFlows(NamedTuple):
    """The flows ``povwatch serve`` deploys (a test serves flows of the same names over fakes)."""

    run: Any = inbox_flow
    watch: Any = inbox_watch
    bulletin: Any = bulletin_flow


def build_deployments(warehouse: Path, inbox: Path, watch_minutes: float | None = None,
                      flows: ServedFlows = ServedFlows()) -> list:
    from prefect.schedules import Cron, Interval

    settings = load_settings()
    watch_minutes = watch_minutes or settings.watch_minutes
    w, i = str(warehouse), str(inbox)
    deployments = [
        flows.run.to_deployment(
            name="monthly", schedules=[Cron(settings.monthly_cron, timezone=TZ)],
            parameters={"inbox": i, "warehouse": w}, tags=["povwatch"],
            description="月度运行：收件箱中每个有新文件的期次，按顺序 / the monthly run"),
        flows.watch.to_deployment(
            name="inbox-watch", schedules=[Interval(dt.timedelta(minutes=watch_minutes), timezone=TZ)],
            parameters={"inbox": i, "warehouse": w}, tags=["povwatch"],
            description="收件箱巡检：部门报送新文件（sha256 变化）即启动运行 / start a run on delivery"),
        flows.bulletin.to_deployment(
            name="weekly-dispatch", schedules=[Cron(WEEKLY_CRON, timezone=TZ)],
            parameters={"kind": "weekly", "warehouse": w}, tags=["povwatch"],
            description="周调度：上周新开、整改、逾期问题 / weekly dispatch summary"),
        flows.bulletin.to_deployment(
            name="dekad-bulletin", schedules=[Cron(DEKAD_CRON, timezone=TZ)],
            parameters={"kind": "dekad", "warehouse": w}, tags=["povwatch"],
            description="旬通报：上一旬的问题台账变化 / dekad bulletin"),
    ]
    return [entrypoint_anywhere(d, f) for d, f in zip(
        deployments, (flows.run, flows.watch, flows.bulletin, flows.bulletin))]


def entrypoint_anywhere(deployment, flow_obj):
    """The deployment's entrypoint, independent of the serving process's working folder (Prefect
    makes it a file path relative to it): the flow's module path (``povwatch.flows.pipeline.
    inbox_flow``), or for a flow defined in a script run as ``__main__`` the script's absolute
    path. A folder holding a ``tasks.py`` or ``flows/`` of its own then changes nothing."""
    from prefect.deployments.runner import EntrypointType

    fn = flow_obj.fn
    if fn.__module__ != "__main__":
        deployment.entrypoint = f"{fn.__module__}.{fn.__name__}"
        deployment._entrypoint_type = EntrypointType.MODULE_PATH
        deployment._path = None
    else:
        deployment.entrypoint = f"{Path(fn.__globals__['__file__']).resolve()}:{fn.__qualname__}"
    return deployment


def webhook_url(urls: list[str] | None = None) -> str | None:
    """The first alert URL Prefect's Custom Webhook block can call (http(s), or Apprise json(s)://)."""
    if urls is None:
        urls = list(load_settings().alert_urls)
    for url in urls:
        for scheme, http in (("jsons://", "https://"), ("json://", "http://"),
                             ("https://", "https://"), ("http://", "http://")):
            if url.startswith(scheme):
                return http + url[len(scheme):]
    return None


def ensure_failure_automation(url: str | None = None):
    """Create (or replace) the webhook block and the Automation that uses it; None if no URL."""
    from prefect.automations import Automation, EventTrigger, SendNotification
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    url = url or webhook_url()
    if not url:
        log.warning("POVWATCH_ALERT_URLS has no http(s)/json URL: no failure Automation")
        return None
    block = CustomWebhookNotificationBlock(
        name="povwatch", url=url,
        json_data={"title": "{{subject}}", "text": "{{body}}", "source": "povwatch"})
    block_id = block.save(WEBHOOK_BLOCK_NAME, overwrite=True)
    try:
        Automation.read(name=AUTOMATION_NAME).delete()
    except Exception:  # noqa: BLE001 - not there yet
        pass
    return Automation(
        name=AUTOMATION_NAME,
        description="povwatch 流程运行失败时通知 / notify when a povwatch flow run fails",
        trigger=EventTrigger(
            expect={"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": ALERTED_FLOWS},
            posture="Reactive", threshold=1, within=dt.timedelta(0),
        ),
        actions=[SendNotification(
            block_document_id=block_id,
            subject="povwatch：运行失败 {{ flow.name }} / {{ flow_run.name }}",
            body=("povwatch 流程运行失败 / flow run failed: {{ flow.name }} / {{ flow_run.name }}\n"
                  "状态 state: {{ flow_run.state.name }}\n说明 message: {{ flow_run.state.message }}\n"
                  "flow run id: {{ flow_run.id }}"),
        )],
    ).create()


def serve(warehouse: Path, inbox: str | None = None, flows: ServedFlows = ServedFlows()) -> None:
    """Register the deployments and the failure Automation, then run them until stopped."""
    from prefect import serve as prefect_serve
    from prefect.settings import PREFECT_API_URL

    prepare_prefect("prefect")
    settings = load_settings(inbox=inbox)
    if not (settings.prefect_api_url or PREFECT_API_URL.value()):
        print("povwatch serve 需要 Prefect 服务器 / needs a Prefect server:\n"
              "  prefect server start            # in another terminal\n"
              "  export PREFECT_API_URL=http://127.0.0.1:4200/api\n"
              "See docs/orchestration.md.", file=sys.stderr)
        raise SystemExit(1)
    inbox_path = settings.inbox.resolve()
    inbox_path.mkdir(parents=True, exist_ok=True)
    deployments = build_deployments(Path(warehouse), inbox_path, flows=flows)
    automation = ensure_failure_automation()
    print(f"povwatch: inbox {inbox_path}, warehouse {warehouse}; "
          f"failure automation: {'on' if automation else 'off (no POVWATCH_ALERT_URLS)'}", flush=True)
    prefect_serve(*deployments)
