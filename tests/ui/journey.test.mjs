// The console journey in a real browser (Debian's Chromium, headless, driven
// by playwright-core): an administrator signs in, creates a private project,
// adds a developer, creates a robot account and pushes an image with skopeo
// using the secret read from the page, browses to the artifact, copies its
// pull command and removes a tag; edits immutability and tag retention rules
// and runs retention, labels the artifact, manages a system robot, reads the
// configuration and runs garbage collection; creates a registry endpoint for
// a docker-registry, tests it, replicates the project to it with a
// push-based policy and edits the policy; the developer cannot see the
// member edit controls, error pages keep the navigation, and a form post
// without the CSRF token is refused.
//
// Needs WHARF_URL (a running Wharf) and WHARF_ADMIN_PASSWORD; writes
// screenshots to SCREENSHOT_DIR (default docs/images). tests/ui/run sets
// all of this up. Exits non-zero on the first failed step.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { writeImageLayout } from "./image.mjs";

const base = process.env.WHARF_URL;
const adminPassword = process.env.WHARF_ADMIN_PASSWORD;
assert.ok(base && adminPassword, "set WHARF_URL and WHARF_ADMIN_PASSWORD (tests/ui/run does)");
const shots = process.env.SCREENSHOT_DIR ?? "docs/images";
mkdirSync(shots, { recursive: true });
const host = new URL(base).host;
const project = "journey";
const developer = { name: "dev1", password: "Developer-pass-1" };

let step = 0;
async function check(name, body) {
  step += 1;
  const started = Date.now();
  try {
    await body();
    console.log(`ok ${step} - ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    console.log(`not ok ${step} - ${name}`);
    throw error;
  }
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function signIn(page, username, password) {
  await page.goto(base + "/");
  await page.fill("#username", username);
  await page.fill("#password", password);
  await Promise.all([page.waitForURL(/\/projects/), page.click("button[type=submit]")]);
  assert.equal(await page.textContent("#current-user"), username);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const work = mkdtempSync(join(tmpdir(), "wharf-ui-"));
let failed = false;
try {
  const admin = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  // The copy buttons write to the clipboard; the test reads it back.
  await admin.grantPermissions(["clipboard-read", "clipboard-write"], { origin: base });
  const page = await admin.newPage();
  // Destructive forms ask first; the administrator agrees.
  page.on("dialog", (dialog) => dialog.accept());

  await check("an anonymous visitor gets the sign-in page at /", async () => {
    await page.goto(base + "/");
    assert.equal(await page.title(), "Sign in · Wharf");
    await shot(page, "console-sign-in");
  });

  await check("a wrong password is refused on the sign-in page", async () => {
    await page.fill("#username", "admin");
    await page.fill("#password", "not-the-password");
    await page.click("button[type=submit]");
    assert.match(await page.textContent("#signin-error"), /invalid username or password/i);
  });

  await check("the administrator signs in; the session cookie is HttpOnly and SameSite=Lax", async () => {
    await signIn(page, "admin", adminPassword);
    const sid = (await admin.cookies()).find((c) => c.name === "sid");
    assert.ok(sid, "a sid cookie is set");
    assert.equal(sid.httpOnly, true);
    assert.equal(sid.sameSite, "Lax");
  });

  await check("the administrator creates a private project", async () => {
    await page.click("#new-project summary");
    await page.fill("#project-name", project);
    await Promise.all([page.waitForURL(new RegExp(`/projects/${project}/repositories$`)), page.click("#create-project button[type=submit]")]);
    assert.match(await page.textContent(".flash"), new RegExp(`Project ${project} created`));
    assert.equal(await page.textContent(".page-head .badge"), "private");
  });

  await check("a duplicate project name is shown next to the create form", async () => {
    await page.goto(base + "/projects");
    await page.click("#new-project summary");
    await page.fill("#project-name", project);
    await page.click("#create-project button[type=submit]");
    const error = await page.textContent("#create-project .error");
    assert.match(error, /already exists|taken|exists/i);
  });

  await check("the administrator creates a user on the Administration page", async () => {
    await page.click("text=Administration");
    await page.click("#new-user summary");
    await page.fill("#user-name", developer.name);
    await page.fill("#user-email", "dev1@example.test");
    await page.fill("#user-realname", "Dev One");
    await page.fill("#user-password", developer.password);
    await page.click("#create-user button[type=submit]");
    assert.match(await page.textContent(".flash"), /User dev1 created/);
    assert.equal(await page.locator(`tr[data-user="${developer.name}"]`).count(), 1);
    // The administrator's own row offers no delete and no flag change.
    assert.equal(await page.locator('tr[data-user="admin"] button', { hasText: "Delete" }).count(), 0);
  });

  await check("a weak password is shown next to the new-user form", async () => {
    await page.click("#new-user summary");
    await page.fill("#user-name", "weak");
    await page.fill("#user-email", "weak@example.test");
    await page.fill("#user-password", "weakweak");
    await page.click("#create-user button[type=submit]");
    assert.match(await page.textContent("#create-user .error"), /password/i);
    await shot(page, "console-admin-users");
  });

  await check("the administrator adds the user as developer", async () => {
    await page.goto(`${base}/projects/${project}/members`);
    await page.fill("#member-username", developer.name);
    await page.selectOption("#member-role", { label: "Developer" });
    await page.click("#add-member button[type=submit]");
    assert.match(await page.textContent(".flash"), /dev1 is now Developer/);
    const role = page.locator(`tr[data-member="${developer.name}"] select[name=role]`);
    assert.equal(await role.inputValue(), "2");
  });

  await check("adding an unknown user shows the error next to the form", async () => {
    await page.fill("#member-username", "nobody-here");
    await page.click("#add-member button[type=submit]");
    assert.match(await page.textContent("#add-member .error"), /no user nobody-here/i);
    await shot(page, "console-members");
  });

  let robotName;
  let robotSecret;
  await check("the administrator creates a robot account and reads its secret once", async () => {
    await page.goto(`${base}/projects/${project}/robots`);
    await page.click("#new-robot summary");
    await page.fill("#robot-name-input", "ci");
    await page.fill("#robot-duration", "7");
    await page.check('input[name=access][value="artifact:read"]');
    await page.click("#create-robot button[type=submit]");
    robotName = (await page.textContent("#robot-name")).trim();
    robotSecret = (await page.textContent("#robot-secret-value")).trim();
    assert.equal(robotName, `robot$${project}+ci`);
    assert.ok(robotSecret.length >= 8, "a secret is shown");
    await page.click("button[data-copy-from='#robot-secret-value']");
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), robotSecret);
    await shot(page, "console-robot-secret");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.click("text=Download docker login instructions"),
    ]);
    const file = join(work, "login.txt");
    await download.saveAs(file);
    const text = (await import("node:fs")).readFileSync(file, "utf8");
    assert.ok(text.includes(`docker login ${host} --username '${robotName}'`), text);
    await page.goto(`${base}/projects/${project}/robots`);
    assert.equal(await page.locator("#robot-secret").count(), 0, "the secret is not shown again");
  });

  let indexDigest;
  await check("skopeo pushes a two-platform image with the robot's secret", async () => {
    const layout = join(work, "image");
    indexDigest = writeImageLayout(layout, "v1");
    execFileSync("skopeo", [
      "copy", "--all", "--dest-tls-verify=false", "--dest-creds", `${robotName}:${robotSecret}`,
      `oci:${layout}:v1`, `docker://${host}/${project}/app:v1`,
    ], { stdio: ["ignore", "ignore", "inherit"] });
  });

  await check("the artifact shows its tag, size and platforms", async () => {
    await page.goto(`${base}/projects/${project}/repositories`);
    await page.click(`text=${project}/app`);
    const row = page.locator(`tr[data-digest="${indexDigest}"]`);
    assert.equal(await row.locator(".kind").textContent(), "index");
    assert.deepEqual(await row.locator(".tag").evaluateAll((tags) => tags.map((t) => t.dataset.tag)), ["v1"]);
    assert.match(await row.locator(".size").textContent(), /^\d+(\.\d)? (B|KiB)$/);
    assert.deepEqual(await row.locator(".platform").allTextContents(), ["linux/amd64", "linux/arm64"]);
    await shot(page, "console-artifacts");
    // The same page on a phone: narrow columns go, the table scrolls sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    await shot(page, "console-artifacts-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await check("the pull command is copied for this host", async () => {
    const row = page.locator(`tr[data-digest="${indexDigest}"]`);
    await row.locator("button", { hasText: "Copy pull command" }).click();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()),
      `docker pull ${host}/${project}/app:v1`);
  });

  await check("a tag is added and then deleted", async () => {
    const row = () => page.locator(`tr[data-digest="${indexDigest}"]`);
    await row().locator(".add-tag input[name=tag]").fill("old");
    await row().locator(".add-tag button").click();
    assert.match(await page.textContent(".flash"), /Tag old added/);
    await row().locator('.tag[data-tag="old"] button').click();
    assert.match(await page.textContent(".flash"), /Tag old removed/);
    const tags = await row().locator(".tag").evaluateAll((t) => t.map((x) => x.dataset.tag));
    assert.deepEqual(tags, ["v1"]);
  });

  await check("the artifact page lists the platforms", async () => {
    await page.click(`tr[data-digest="${indexDigest}"] a.digest`);
    assert.deepEqual(await page.locator("#platforms .platform").allTextContents(), ["linux/amd64", "linux/arm64"]);
    await shot(page, "console-artifact");
  });

  await check("the projects list shows the badge and the repository count, in light and dark", async () => {
    await page.goto(base + "/projects");
    const row = page.locator(`tr[data-project="${project}"]`);
    assert.equal(await row.locator(".badge").textContent(), "private");
    assert.equal((await row.locator("td.num").textContent()).trim(), "1");
    await shot(page, "console-projects");
    await page.emulateMedia({ colorScheme: "dark" });
    await shot(page, "console-projects-dark");
    await page.emulateMedia({ colorScheme: "light" });
  });

  await check("the project's Logs tab and the system audit log record the changes", async () => {
    await page.goto(`${base}/projects/${project}/logs`);
    const operations = await page.locator("#logs tbody tr").allTextContents();
    assert.ok(operations.some((r) => r.includes("robot$journey+ci")), operations.join("\n"));
    assert.ok(operations.some((r) => r.includes("dev1")), operations.join("\n"));
    await shot(page, "console-project-logs");
    await page.goto(`${base}/admin/logs`);
    const all = await page.locator("#logs tbody tr").allTextContents();
    assert.ok(all.some((r) => r.includes("created the user")), all.join("\n"));
  });

  await check("the Configuration tab makes the project public and shows its quota", async () => {
    await page.goto(`${base}/projects/${project}/configuration`);
    assert.match(await page.textContent("#project-quota"), /used of unlimited/);
    await page.check("#settings input[name=public]");
    await page.click("#settings button[type=submit]");
    assert.match(await page.textContent(".flash"), /Settings saved/);
    assert.equal(await page.textContent(".page-head .badge"), "public");
    await shot(page, "console-configuration");
    // Anyone may now pull: no credentials at all.
    execFileSync("skopeo", ["inspect", "--tls-verify=false", "--no-creds", "--raw",
      `docker://${host}/${project}/app:v1`], { stdio: ["ignore", "ignore", "inherit"] });
  });

  await check("an immutable tag rule protects v1, and the refusal shows next to the tag", async () => {
    await page.goto(`${base}/projects/${project}/policy`);
    await page.fill("#create-rule input[name=tag_pattern]", "v*");
    await page.click("#create-rule button[type=submit]");
    assert.match(await page.textContent(".flash"), /rule added/);
    assert.match(await page.textContent("#immutable-rules tbody"), /tags matching v\*/);
    await shot(page, "console-policy");
    await page.goto(`${base}/projects/${project}/repositories/app`);
    const row = page.locator(`tr[data-digest="${indexDigest}"]`);
    await row.locator('.tag[data-tag="v1"] button').click();
    assert.match(await row.locator(".tags .field-error").textContent(), /immutable/i);
    assert.equal(await row.locator('.tag[data-tag="v1"]').count(), 1);
  });

  await check("an immutable tag rule is disabled, edited, enabled again and deleted", async () => {
    await page.goto(`${base}/projects/${project}/policy`);
    const row = () => page.locator("#immutable-rules tbody tr[data-rule]").first();
    await row().locator("button", { hasText: "Disable" }).click();
    assert.match(await page.textContent(".flash"), /rule disabled/);
    assert.equal(await row().locator(".badge").textContent(), "disabled");
    // Disabled, it protects nothing: v1 could go. Edit it to protect only release-*.
    await row().locator("details.edit-rule summary").click();
    await row().locator("details.edit-rule input[name=tag_pattern]").fill("release-*");
    await row().locator("details.edit-rule button[type=submit]").click();
    assert.match(await page.textContent(".flash"), /rule saved/);
    assert.match(await row().textContent(), /tags matching release-\*/);
    await row().locator("button", { hasText: "Enable" }).click();
    assert.match(await page.textContent(".flash"), /rule enabled/);
    assert.equal(await row().locator(".badge").textContent(), "enabled");
    await row().locator("button", { hasText: "Delete" }).click();
    assert.match(await page.textContent(".flash"), /rule deleted/);
    assert.equal(await page.locator("#immutable-rules tr[data-rule]").count(), 0);
  });

  // Polls a page until `selector`'s text matches `done` (a background job finishing).
  async function waitForText(url, selector, done, seconds = 60) {
    for (let i = 0; i < seconds * 2; i += 1) {
      await page.goto(url);
      const text = (await page.textContent(selector)) ?? "";
      if (done.test(text)) { return text; }
      await page.waitForTimeout(500);
    }
    throw new Error(`${selector} on ${url} never matched ${done}`);
  }

  await check("tag retention: a rule is added, disabled and enabled, scheduled, and a bad cron is refused next to the form", async () => {
    await page.goto(`${base}/projects/${project}/policy`);
    await page.click("nav.subtabs >> text=Tag retention");
    assert.match(page.url(), /\/policy\/retention$/);
    assert.match(await page.textContent("#retention-rules tbody"), /No retention rules/);
    await page.selectOption("#retention-template", "latestPushedK");
    await page.fill("#retention-count", "5");
    await page.click("#add-retention-rule button[type=submit]");
    assert.match(await page.textContent(".flash"), /Retention rule added/);
    const rule = page.locator('#retention-rules tr[data-retention-rule="1"]');
    assert.match(await rule.textContent(), /the 5 most recently pushed, tags matching \*\*/);
    await rule.locator("button", { hasText: "Disable" }).click();
    assert.match(await page.textContent(".flash"), /rule disabled/);
    assert.equal(await rule.locator(".badge").textContent(), "disabled");
    await rule.locator("button", { hasText: "Enable" }).click();
    assert.equal(await rule.locator(".badge").textContent(), "enabled");
    await page.fill("#retention-cron", "every day");
    await page.click("#retention-schedule button[type=submit]");
    assert.match(await page.textContent("#retention-schedule .error"), /cron|field/i);
    await page.fill("#retention-cron", "0 0 0 * * *");
    await page.click("#retention-schedule button[type=submit]");
    assert.match(await page.textContent(".flash"), /schedule saved/);
    assert.equal(await page.inputValue("#retention-cron"), "0 0 0 * * *");
  });

  await check("tag retention: a dry run finishes and its log keeps the artifact", async () => {
    await page.goto(`${base}/projects/${project}/policy/retention`);
    await page.click("#retention-dry-run button");
    assert.match(await page.textContent(".flash"), /Dry run \d+ started/);
    assert.equal(await page.locator("#retention-runs tr[data-run]").count(), 1);
    await waitForText(`${base}/projects/${project}/policy/retention`, "#retention-runs tbody", /Success/);
    await shot(page, "console-retention");
    await page.click("#retention-runs tr[data-run] a");
    const task = page.locator(`#run-tasks tr[data-repository="${project}/app"]`);
    assert.equal(await task.count(), 1);
    await task.locator("summary").click();
    assert.match(await task.locator("pre.log").textContent(), /RETAIN/);
    // Nothing went: the index is still there.
    await page.goto(`${base}/projects/${project}/repositories/app`);
    assert.equal(await page.locator(`tr[data-digest="${indexDigest}"]`).count(), 1);
  });

  await check("tag retention: Run now runs after confirmation; a rule is deleted", async () => {
    await page.goto(`${base}/projects/${project}/policy/retention`);
    await page.click("#retention-run-now button");
    assert.match(await page.textContent(".flash"), /Retention run \d+ started/);
    await waitForText(`${base}/projects/${project}/policy/retention`, "#retention-runs tbody tr:first-child .status", /Success/);
    // Five most recent are kept: the one artifact stays.
    await page.goto(`${base}/projects/${project}/repositories/app`);
    assert.equal(await page.locator(`tr[data-digest="${indexDigest}"]`).count(), 1);
    await page.goto(`${base}/projects/${project}/policy/retention`);
    await page.locator('#retention-rules tr[data-retention-rule="1"] button', { hasText: "Delete" }).click();
    assert.match(await page.textContent(".flash"), /Retention rule deleted/);
    assert.match(await page.textContent("#retention-rules tbody"), /No retention rules/);
  });

  await check("labels are created, refused twice, and deleted on the Labels tab", async () => {
    await page.goto(`${base}/projects/${project}/labels`);
    await page.fill("#label-name", "release");
    await page.fill("#label-description", "shipped builds");
    await page.click("#create-label button[type=submit]");
    assert.match(await page.textContent(".flash"), /Label release created/);
    await page.fill("#label-name", "release");
    await page.click("#create-label button[type=submit]");
    assert.match(await page.textContent("#create-label .error"), /already has a label release/);
    await shot(page, "console-labels");
    // Attach it to the artifact; the chip shows on the artifact and its repository.
    await page.goto(`${base}/projects/${project}/repositories/app`);
    await page.click(`tr[data-digest="${indexDigest}"] a.digest`);
    await page.selectOption("#attach-label select[name=label]", { label: "release" });
    await page.click("#attach-label button[type=submit]");
    assert.match(await page.textContent(".flash"), /Label release attached/);
    assert.equal(await page.locator('#artifact-labels .label-chip[data-label="release"]').count(), 1);
    await shot(page, "console-artifact-labels");
    await page.goto(`${base}/projects/${project}/repositories/app`);
    assert.equal(await page.locator(`tr[data-digest="${indexDigest}"] .label-chip[data-label="release"]`).count(), 1);
    await page.click(`tr[data-digest="${indexDigest}"] a.digest`);
    await page.click('#artifact-labels .label-chip[data-label="release"] button');
    assert.match(await page.textContent(".flash"), /Label release detached/);
    assert.equal(await page.locator("#artifact-labels .label-chip").count(), 0);
    await page.goto(`${base}/projects/${project}/labels`);
    await page.click('tr[data-label="release"] button');
    assert.match(await page.textContent(".flash"), /Label release deleted/);
    assert.equal(await page.locator("tr[data-label]").count(), 0);
  });

  await check("a system robot account is created for the project, signs in with skopeo, is refreshed, disabled and deleted", async () => {
    await page.goto(`${base}/admin/users`);
    await page.click("nav.tabs >> text=Robot accounts");
    await page.click("#new-robot summary");
    await page.fill("#robot-name-input", "deployer");
    await page.fill("#robot-projects", "no-such-project");
    await page.click("#create-robot button[type=submit]");
    assert.match(await page.textContent("#create-robot .error"), /no-such-project/);
    await page.fill("#robot-name-input", "deployer");
    await page.fill("#robot-projects", project);
    await page.check('#create-robot input[name=system][value="garbage-collection:list"]');
    await page.click("#create-robot button[type=submit]");
    const name = (await page.textContent("#robot-name")).trim();
    const secret = (await page.textContent("#robot-secret-value")).trim();
    assert.equal(name, "robot$deployer");
    await shot(page, "console-admin-robots");
    execFileSync("skopeo", ["inspect", "--tls-verify=false", "--raw", "--creds", `${name}:${secret}`,
      `docker://${host}/${project}/app:v1`], { stdio: ["ignore", "ignore", "inherit"] });
    const row = () => page.locator(`tr[data-robot="${name}"]`);
    assert.match(await row().textContent(), new RegExp(`projects ${project}`));
    await row().locator("button", { hasText: "Refresh secret" }).click();
    const fresh = (await page.textContent("#robot-secret-value")).trim();
    assert.notEqual(fresh, secret);
    await row().locator("button", { hasText: "Disable" }).click();
    assert.match(await page.textContent(".flash"), /is disabled/);
    assert.equal(await row().locator(".badge").textContent(), "disabled");
    await row().locator("button", { hasText: "Delete" }).click();
    assert.match(await page.textContent(".flash"), /was deleted/);
    assert.equal(await row().count(), 0);
  });

  await check("the Configuration page shows the effective settings, read-only", async () => {
    await page.goto(`${base}/admin/users`);
    await page.click("nav.tabs >> text=Configuration");
    const rows = await page.locator("#settings tbody tr").allTextContents();
    assert.ok(rows.some((r) => r.includes("Robot account prefix") && r.includes("robot$")), rows.join("\n"));
    assert.match(await page.textContent("#settings-note"), /none can be changed here/);
    assert.equal(await page.locator("main form").count(), 0);
  });

  await check("garbage collection: a bad cron is refused, a schedule is set and cleared", async () => {
    await page.goto(`${base}/admin/users`);
    await page.click("nav.tabs >> text=Garbage collection");
    assert.match(await page.textContent("#gc-schedule-text"), /Not scheduled/);
    await page.fill("#gc-cron", "0 0 * * *");
    await page.click("#gc-schedule button[type=submit]");
    assert.match(await page.textContent("#gc-schedule .error"), /fields/);
    await page.fill("#gc-cron", "0 0 2 * * 0");
    await page.check("#gc-schedule input[name=delete_untagged]");
    await page.click("#gc-schedule button[type=submit]");
    assert.match(await page.textContent(".flash"), /schedule saved/);
    assert.match(await page.textContent("#gc-schedule-text"), /0 0 2 \* \* 0.*untagged artifacts included/);
    await page.fill("#gc-cron", "");
    await page.click("#gc-schedule button[type=submit]");
    assert.match(await page.textContent(".flash"), /schedule removed/);
    assert.match(await page.textContent("#gc-schedule-text"), /Not scheduled/);
  });

  await check("garbage collection: a dry run with untagged artifacts finishes and shows its log", async () => {
    await page.goto(`${base}/admin/gc`);
    await page.check("#gc-run input[name=delete_untagged]");
    await page.check("#gc-run input[name=dry_run]");
    await page.click("#gc-run button[type=submit]");
    assert.match(await page.textContent(".flash"), /Garbage collection \d+ started \(dry run\)/);
    await waitForText(`${base}/admin/gc`, "#gc-runs tbody tr:first-child .status", /Success/);
    assert.match(await page.textContent("#gc-runs tbody tr:first-child"), /dry run, untagged artifacts included/);
    await shot(page, "console-gc");
    await page.click("#gc-runs tbody tr:first-child a");
    assert.match(await page.textContent("#gc-log"), /\S/);
    // The audit log names who started it.
    await page.goto(`${base}/admin/logs`);
    assert.match(await page.textContent("#logs tbody"), /started garbage collection/);
  });

  const remote = process.env.REMOTE_REGISTRY_URL;
  assert.ok(remote, "set REMOTE_REGISTRY_URL (tests/ui/run starts a docker-registry)");
  const remoteSecret = "remote-secret-never-shown";

  await check("registries: an endpoint for a docker-registry is created, its connection tested, a taken name refused next to the form", async () => {
    await page.goto(`${base}/admin/users`);
    await page.click("nav.tabs >> text=Registries");
    assert.match(page.url(), /\/admin\/registries$/);
    assert.match(await page.textContent("#registries tbody"), /No registry endpoints/);
    await page.click("#new-registry summary");
    await page.selectOption("#registry-type", "docker-registry");
    await page.fill("#registry-name", "remote");
    await page.fill("#registry-url", remote);
    await page.fill("#registry-key", "replicator");
    await page.fill("#registry-secret", remoteSecret);
    await page.click("#create-registry button[type=submit]");
    assert.match(await page.textContent(".flash"), /Registry remote created/);
    const row = page.locator('#registries tr[data-registry="remote"]');
    assert.match(await row.textContent(), /docker-registry/);
    assert.equal(await row.locator(".status").textContent(), "unknown");
    await row.locator("button", { hasText: "Test connection" }).click();
    assert.match(await page.textContent(".flash"), /remote is healthy/);
    assert.equal(await row.locator(".status").textContent(), "healthy");
    assert.match(await row.textContent(), /checked/);
    // The secret is write-only: no page carries it, not even the edit form.
    assert.ok(!(await page.content()).includes(remoteSecret));
    await row.locator("a", { hasText: "Edit" }).click();
    assert.equal(await page.inputValue("#registry-secret"), "");
    assert.ok(!(await page.content()).includes(remoteSecret));
    await page.goto(`${base}/admin/registries`);
    await page.click("#new-registry summary");
    await page.fill("#registry-name", "remote");
    await page.fill("#registry-url", remote);
    await page.click("#create-registry button[type=submit]");
    assert.match(await page.textContent("#create-registry .error"), /already exists/);
  });

  let policyUrl = "";
  await check("replication: a push-based manual policy copies the project to the registry; its execution and tasks are shown", async () => {
    await page.click("nav.tabs >> text=Replications");
    assert.match(await page.textContent("#policies tbody"), /No replication policies/);
    await page.click("#new-policy summary");
    await page.fill("#create-policy-name", "to-remote");
    await page.check('#create-policy input[name=direction][value=push]');
    await page.selectOption("#create-policy-registry", { label: `remote (${remote})` });
    await page.fill("#create-policy-name-filter", `${project}/**`);
    await page.selectOption("#create-policy-trigger", "manual");
    await page.click("#create-policy button[type=submit]");
    assert.match(await page.textContent(".flash"), /Replication policy to-remote created/);
    policyUrl = page.url();
    assert.match(policyUrl, /\/admin\/replications\/\d+$/);
    assert.match(await page.textContent("#policy-facts"), /push-based: this Wharf → remote/);
    await page.click("#replicate-now");
    assert.match(await page.textContent(".flash"), /Execution \d+ of to-remote started/);
    const status = await waitForText(policyUrl, "#executions tbody tr:first-child .status", /Success|Error|Stopped/, 120);
    assert.equal(status, "Success", await page.textContent("#executions tbody tr:first-child"));
    await page.click("#executions tbody tr:first-child a");
    const task = page.locator("#tasks tr[data-task]", { hasText: `${project}/app:v1` });
    assert.equal(await task.count(), 1, await page.textContent("#tasks"));
    assert.match(await task.textContent(), /copy/);
    assert.equal(await task.locator(".status").textContent(), "Succeed");
    assert.match(await page.textContent("#execution-facts"), /0 failed/);
    await shot(page, "console-replication");
    await task.locator("a", { hasText: "Log" }).click();
    assert.match(await page.textContent("#task-log"), /Succeed/);
    // The image is in the docker-registry now.
    const listed = await (await fetch(`${remote}/v2/${project}/app/tags/list`)).json();
    assert.ok(listed.tags.includes("v1"), JSON.stringify(listed));
  });

  await check("replication: the policy is edited, a bad cron is refused next to the form, then disabled and enabled from the list; its registry cannot be deleted while it is used", async () => {
    await page.goto(policyUrl);
    await page.click("#edit-policy-card summary");
    assert.equal(await page.inputValue("#edit-policy-name-filter"), `${project}/**`);
    await page.fill("#edit-policy-tag-filter", "v*");
    await page.selectOption("#edit-policy-trigger", "scheduled");
    await page.fill("#edit-policy-cron", "0 0 2 * *");
    await page.click("#edit-policy button[type=submit]");
    assert.match(await page.textContent("#edit-policy .error"), /invalid cron/);
    await page.fill("#edit-policy-tag-filter", "v*");
    await page.selectOption("#edit-policy-trigger", "manual");
    await page.click("#edit-policy button[type=submit]");
    assert.match(await page.textContent(".flash"), /to-remote saved/);
    assert.match(await page.textContent("#policy-facts"), /name journey\/\*\* · tag v\*/);
    await page.goto(`${base}/admin/replications`);
    const row = page.locator('#policies tr[data-policy="to-remote"]');
    assert.equal(await row.locator(".status").textContent(), "Success");
    await row.locator("button", { hasText: "Disable" }).click();
    assert.match(await page.textContent(".flash"), /to-remote is disabled/);
    assert.equal(await row.locator("button", { hasText: "Replicate now" }).count(), 0);
    await row.locator("button", { hasText: "Enable" }).click();
    assert.match(await page.textContent(".flash"), /to-remote is enabled/);
    await page.goto(`${base}/admin/registries`);
    const registry = page.locator('#registries tr[data-registry="remote"]');
    await registry.locator("button", { hasText: "Delete" }).click();
    assert.match(await registry.locator(".field-error").textContent(), /used by 1 replication policies/);
  });

  const dev = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const devPage = await dev.newPage();
  await check("the developer sees the members but none of the edit controls", async () => {
    await signIn(devPage, developer.name, developer.password);
    await devPage.goto(`${base}/projects/${project}/members`);
    assert.equal(await devPage.locator("#members tr[data-member]").count(), 2);
    assert.equal(await devPage.locator("#add-member").count(), 0);
    assert.equal(await devPage.locator("form.change-role").count(), 0);
    assert.equal(await devPage.locator("#members button", { hasText: "Remove" }).count(), 0);
    await shot(devPage, "console-members-developer");
    await devPage.goto(`${base}/admin/users`);
    assert.match(await devPage.textContent("main h1"), /Not allowed/);
    // The error page keeps the layout: the developer can go on from it.
    assert.equal(await devPage.textContent("#current-user"), developer.name);
    assert.equal(await devPage.locator("nav.nav a", { hasText: "Projects" }).count(), 1);
    assert.equal(await devPage.locator("nav.nav a", { hasText: "Administration" }).count(), 0);
    await devPage.goto(`${base}/admin/gc`);
    assert.match(await devPage.textContent("main h1"), /Not allowed/);
    for (const admin of ["registries", "replications"]) {
      await devPage.goto(`${base}/admin/${admin}`);
      assert.match(await devPage.textContent("main h1"), /Not allowed/);
    }
    await devPage.goto(`${base}/projects/no-such-project/repositories`);
    assert.match(await devPage.textContent("main h1"), /Not found/);
    assert.equal(await devPage.textContent("#current-user"), developer.name);
  });

  await check("the developer's direct post to change a role is refused by the service", async () => {
    await devPage.goto(`${base}/projects/${project}/members`);
    const csrf = await devPage.locator("input[name=csrf]").first().inputValue();
    const response = await devPage.request.post(`${base}/projects/${project}/members`, {
      form: { csrf, username: "admin", role: "1" }, maxRedirects: 0,
    });
    assert.equal(response.status(), 303);
    await devPage.goto(`${base}/projects/${project}/members`);
    assert.match(await devPage.textContent(".error"), /does not allow you to create member/);
  });

  await check("a form post without the CSRF token is refused", async () => {
    const response = await devPage.request.post(`${base}/projects`, {
      form: { name: "forged" }, maxRedirects: 0,
    });
    assert.equal(response.status(), 403);
    const refusal = await response.text();
    assert.match(refusal, /security token/);
    // The refusal keeps the layout: the developer can go on from it.
    assert.match(refusal, /id="current-user">dev1</);
    const wrong = await devPage.request.post(`${base}/projects`, {
      form: { name: "forged", csrf: "not-the-token" }, maxRedirects: 0,
    });
    assert.equal(wrong.status(), 403);
    await devPage.goto(base + "/projects?q=forged");
    assert.equal(await devPage.locator("tr[data-project]").count(), 0);
  });

  await check("signing out ends the session", async () => {
    await devPage.click("text=Sign out");
    await devPage.waitForURL(/\/login$/);
    await devPage.goto(`${base}/projects`);
    assert.match(devPage.url(), /\/login\?next=/);
  });
} catch (error) {
  failed = true;
  console.error(error);
} finally {
  await browser.close();
  rmSync(work, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
