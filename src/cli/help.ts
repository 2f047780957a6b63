/**
 * What soad prints for @effect/cli's built-in options: help, composed from the library's own documents (the
 * command's HelpDoc and Usage), and completion scripts, the library's less three faults. Only what the library
 * cannot do is done here; each fix has a test that shows the library's own output it corrects (test/unit/Cli.test.ts).
 *
 * @internal
 */
import type * as CliConfig from "@effect/cli/CliConfig"
import * as HelpDoc from "@effect/cli/HelpDoc"
import * as Span from "@effect/cli/HelpDoc/Span"
import * as Usage from "@effect/cli/Usage"
import * as Doc from "@effect/printer/Doc"
import * as Option from "effect/Option"

/**
 * The paragraphs @effect/cli 0.77 puts before or after every option's and argument's description, which no setting
 * turns off (CliConfig's showTypes changes only the usage line) and which say nothing soad's descriptions do not:
 * each option's text gives its values, its default, and whether it repeats.
 */
const boilerplate: ReadonlySet<string> = new Set([
  "A user-defined piece of text.",
  "A file.",
  "An integer.",
  "A true or false value.",
  "This setting is optional.",
  "This option may be repeated zero or more times.",
  "This argument may be repeated zero or more times."
])

/** A choice's paragraph, `One of the following: accept, notify`: the usage line already lists the choices. */
const choices = "One of the following: "

/** Whether a paragraph is one of the library's boilerplate lines. */
const isBoilerplate = (span: Span.Span): boolean =>
  Span.isText(span) && (boilerplate.has(span.value) || span.value.startsWith(choices))

/** `doc` without the library's boilerplate paragraphs. */
export const withoutBoilerplate = (doc: HelpDoc.HelpDoc): HelpDoc.HelpDoc => {
  switch (doc._tag) {
    case "Paragraph":
      return isBoilerplate(doc.value) ? HelpDoc.empty : doc
    case "Sequence":
      return HelpDoc.sequence(withoutBoilerplate(doc.left), withoutBoilerplate(doc.right))
    case "DescriptionList":
      return HelpDoc.descriptionList([
        [doc.definitions[0][0], withoutBoilerplate(doc.definitions[0][1])],
        ...doc.definitions.slice(1).map(([span, block]): [Span.Span, HelpDoc.HelpDoc] => [span, withoutBoilerplate(block)])
      ])
    case "Enumeration":
      return HelpDoc.enumeration([withoutBoilerplate(doc.elements[0]), ...doc.elements.slice(1).map(withoutBoilerplate)])
    case "Empty":
    case "Header":
      return doc
  }
}

/** What a help text shows: the program and its version, and the command asked about. */
export interface Page {
  readonly name: string
  readonly version: string
  /** The subcommand asked about (`status`), or undefined for the program's own help. */
  readonly subcommand: string | undefined
  /** The command's usage and help, as @effect/cli's CommandDescriptor.getUsage and getHelp give them. */
  readonly usage: Usage.Usage
  readonly help: HelpDoc.HelpDoc
  /** The program's examples: shown in its own help only. */
  readonly examples: HelpDoc.HelpDoc
}

/**
 * The help page as @effect/cli 0.77 lays it out (its CliApp's ShowHelp: a banner, the version, USAGE, the
 * command's help, the footer), less two of its faults: a subcommand's usage starts with the subcommand alone
 * (`$ status …`: the library adds the program's name only when --help comes before the subcommand), and its
 * footer, the program's examples, ends every subcommand's help too. Without the boilerplate paragraphs.
 */
export const page = (self: Page, config: CliConfig.CliConfig): HelpDoc.HelpDoc => {
  const usage = self.subcommand === undefined ? self.usage : Usage.concat(Usage.named([self.name], Option.none()), self.usage)
  return HelpDoc.blocks([
    HelpDoc.h1(Span.code(self.name)),
    HelpDoc.p(`${self.name} ${self.version}`),
    HelpDoc.h1("USAGE"),
    ...Usage.enumerate(usage, config).map((span) => HelpDoc.p(Span.concat(Span.text("$ "), span))),
    withoutBoilerplate(self.help),
    self.subcommand === undefined ? self.examples : HelpDoc.empty
  ])
}

/**
 * A document as text: with the library's colours and styles, or plain (no escape sequences at all) when `plain`
 * (stdout is no terminal, or NO_COLOR is set). The library renders only with ANSI; the same layout without its
 * annotations is plain text.
 */
export const render = (doc: HelpDoc.HelpDoc, plain: boolean): string =>
  plain
    ? Doc.render(Doc.unAnnotate(HelpDoc.toAnsiDoc(doc)), { style: "pretty" })
    : HelpDoc.toAnsiText(doc)

/** The shells @effect/cli writes completion scripts for. */
export type Shell = "bash" | "fish" | "zsh"

/** A zsh completion spec of an option, as the library writes one with no argument: `'--socket[…]' \`. */
const zshSpec = /^(\s*)'(-{1,2}[A-Za-z][A-Za-z-]*)(\[.*\])'( \\)$/

/** A bash list of a choice's values, which the library joins with commas: `compgen -W "accept,notify"`. */
const bashChoices = /compgen -W "([^"$]*)"/g

/** The description of the library's built-in --log-level, whose levels are Effect's, not soad's. */
const builtInLogLevel = "Sets the minimum log level for a command."

/**
 * A completion script as @effect/cli 0.77 writes it (its lines), less three faults: bash lists a
 * choice's values joined by commas (compgen -W splits on spaces: `--ready <TAB>` offered `accept,notify` as one
 * word); zsh and fish offer the built-in --log-level, with Effect's levels, beside soad's own; zsh says that an
 * option of free text takes no argument (`'--socket[…]'`: `--socket <TAB>` completed another option, not a path).
 * `valueFlags` names the options that take a value.
 */
export const completions = (shell: Shell, lines: ReadonlyArray<string>, valueFlags: ReadonlySet<string>): string =>
  lines
    .join("\n")
    .split("\n")
    .filter((line) => shell === "bash" || !line.includes(builtInLogLevel))
    .map((line) =>
      shell === "bash"
        ? line.replace(bashChoices, (_, list: string) => `compgen -W "${list.replaceAll(",", " ")}"`)
        : shell === "zsh"
        ? line.replace(zshSpec, (spec, indent: string, name: string, description: string, end: string) =>
          valueFlags.has(name) ? `${indent}'${name}${description}:VALUE:_files'${end}` : spec)
        : line
    )
    .join("\n")
