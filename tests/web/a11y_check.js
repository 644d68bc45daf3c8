// A basic accessibility check of the rendered page, run with page.evaluate: `lang` is set, there
// is one h1 and heading levels never skip, every visible control has an accessible name, ids are
// unique, images have alt text, text meets WCAG AA contrast, nothing scrolls sideways.
// Returns a list of problems, each one line; an empty list passes.
() => {
  const problems = [];
  const visible = (el) => el.checkVisibility({ visibilityProperty: true, opacityProperty: true });
  const text = (el) => (el?.textContent ?? "").replace(/\s+/g, " ").trim();
  const describe = (el) => el.outerHTML.replace(/\s+/g, " ").slice(0, 100);

  if (!document.documentElement.getAttribute("lang")?.trim()) problems.push("<html> has no lang");
  if (!text(document.querySelector("title"))) problems.push("the page has no title");

  const headings = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")].filter(visible);
  const h1s = headings.filter((h) => h.tagName === "H1").length;
  if (h1s !== 1) problems.push(`expected one h1, found ${h1s}`);
  let previous = 0;
  for (const heading of headings) {
    const level = Number(heading.tagName[1]);
    if (level > previous + 1) problems.push(`heading "${text(heading)}" jumps from h${previous} to h${level}`);
    previous = level;
  }

  const nameOf = (el) => {
    const labelledBy = el.getAttribute("aria-labelledby");
    if (labelledBy) {
      return labelledBy.split(/\s+/).map((id) => text(document.getElementById(id))).join(" ").trim();
    }
    if (el.getAttribute("aria-label")?.trim()) return el.getAttribute("aria-label").trim();
    if (el.labels?.length) return [...el.labels].map(text).join(" ").trim();
    const own = text(el) || [...el.querySelectorAll("img[alt]")].map((img) => img.alt).join(" ").trim();
    return own || el.getAttribute("title")?.trim() || "";
  };
  const controls = document.querySelectorAll(
    "a[href], button, input:not([type=hidden]), select, textarea, [role=button], [tabindex]:not([tabindex='-1'])",
  );
  for (const control of controls) {
    if (visible(control) && !nameOf(control)) problems.push(`control without a name: ${describe(control)}`);
  }

  const ids = [...document.querySelectorAll("[id]")].map((el) => el.id);
  for (const id of new Set(ids.filter((id, i) => ids.indexOf(id) !== i))) problems.push(`duplicate id "${id}"`);
  for (const img of document.querySelectorAll("img:not([alt])")) problems.push(`image without alt: ${describe(img)}`);

  const rgba = (value) => {
    const parts = value.match(/[\d.]+/g)?.map(Number) ?? [0, 0, 0];
    return { r: parts[0], g: parts[1], b: parts[2], a: parts.length > 3 ? parts[3] : 1 };
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const background = (el) => {
    const layers = [];
    for (let node = el; node; node = node.parentElement) {
      const colour = rgba(getComputedStyle(node).backgroundColor);
      if (colour.a > 0) layers.push(colour);
      if (colour.a === 1) break;
    }
    return layers.reduceRight((below, layer) => over(layer, below), { r: 255, g: 255, b: 255, a: 1 });
  };
  const luminance = ({ r, g, b }) => {
    const channel = (c) => {
      const s = c / 255;
      return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  };
  for (const el of document.body.querySelectorAll("*")) {
    const ownText = [...el.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    if (!ownText || !visible(el) || el.closest(":disabled")) continue;
    const style = getComputedStyle(el);
    const back = background(el);
    const fore = over(rgba(style.color), back);
    const [light, dark] = [luminance(fore), luminance(back)].sort((x, y) => y - x);
    const ratio = (light + 0.05) / (dark + 0.05);
    const size = Number.parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      problems.push(`contrast ${ratio.toFixed(2)}:1 is too low for "${text(el).slice(0, 40)}"`);
    }
  }

  const root = document.documentElement;
  if (root.scrollWidth > root.clientWidth) {
    const wide = [...document.body.querySelectorAll("*")].filter((el) => el.getBoundingClientRect().right > root.clientWidth + 1);
    problems.push(`the page scrolls sideways (${root.scrollWidth}px > ${root.clientWidth}px): ${wide.slice(-1).map(describe)}`);
  }
  return problems;
}
