"""The browser suite's one helper: a Playwright context whose every page is checked as a person would meet it:
no JavaScript errors, no serious or critical axe-core violations, and a full-page screenshot kept."""
import json
import re
from pathlib import Path

BLOCKING = {"serious", "critical"}


class Browser:
    def __init__(self, context, *, base: str, axe: str, out: Path, viewport: str):
        self.context, self.base, self.axe, self.out, self.viewport = context, base, axe, out, viewport
        self.errors: list[str] = []
        self.expected: set[int] = set()
        self.violations: list[str] = []
        self.overflows: list[str] = []
        self.shots = 0
        self.page = context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(f"{self.page.url}: {e}"))
        self.page.on("console", self._console)

    def _console(self, message) -> None:
        if message.type == "error" and not any(f"status of {code} " in message.text for code in self.expected):
            self.errors.append(f"{self.page.url}: console: {message.text}")

    def expect_status(self, code: int) -> None:
        """A page the walk is about to open answers `code` on purpose (a form refused with 422): Chromium logs
        that as a console error, which is then not one."""
        self.expected.add(code)

    def goto(self, path: str, name: str | None = None):
        response = self.page.goto(path)
        assert response is not None and response.status < 400, (path, response and response.status)
        return self.check(name or path)

    def check(self, name: str):
        """Run axe-core on the page as it is now and keep a screenshot; returns the page."""
        page = self.page
        page.wait_for_load_state("load")
        if not page.evaluate("() => typeof window.axe !== 'undefined'"):
            page.evaluate(self.axe)  # through the DevTools protocol: the app's CSP does not apply to it
        result = page.evaluate("""async () => {
            const r = await axe.run(document, {resultTypes: ['violations']});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                           nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
        }""")
        for v in result:
            if v["impact"] in BLOCKING:
                self.violations.append(f"{page.url} [{v['impact']}] {v['id']}: {v['help']} at {v['nodes']}")
        # Nothing wider than the screen: a phone never scrolls a whole page sideways (a wide table scrolls
        # inside its own box, or stacks).
        width = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        if width[0] > width[1]:
            self.overflows.append(f"{page.url} is {width[0]} px wide in a {width[1]} px window")
        self.shots += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "page"
        page.screenshot(path=str(self.out / f"{self.shots:02d}-{slug}.png"), full_page=True)
        (self.out / f"{self.shots:02d}-{slug}.axe.json").write_text(json.dumps(result, indent=1))
        return page

    def click(self, name: str, *, role: str = "link", exact: bool = False, check: str | None = None):
        """Follow a link or press a button by its accessible name, as a person reading the page would."""
        self.page.get_by_role(role, name=name, exact=exact).first.click()
        self.page.wait_for_load_state("load")
        return self.check(check or name)

    def assert_clean(self) -> None:
        assert not self.errors, "JavaScript errors:\n" + "\n".join(self.errors)
        assert not self.violations, "axe-core serious or critical violations:\n" + "\n".join(self.violations)
        assert not self.overflows, "pages wider than the window:\n" + "\n".join(self.overflows)
