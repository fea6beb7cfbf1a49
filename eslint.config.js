// neostandard (standard style) with TypeScript support for lib/, test/, types/, examples/, bench/, scripts/.
import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['dist/**', 'coverage/**', 'node_modules/**', '.tap/**']
})
